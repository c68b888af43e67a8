"""While the app serves, what it loaded is out of the garbage collector's walks, and BLAS
runs on the calling thread alone."""

from __future__ import annotations

import gc

from fastapi.testclient import TestClient
from threadpoolctl import threadpool_info

from api.app import create_app
from api.garbage import FULL_COLLECTION_THRESHOLD
from tests.api.conftest import ServedWorld, promoted_version_copied


def _walked_by_collections(target: object) -> bool:
    return any(found is target for found in gc.get_objects())


def test_the_served_models_are_frozen_while_serving_and_released_after(
        served_world: ServedWorld) -> None:
    threshold = gc.get_threshold()
    app = create_app(served_world.settings())
    models = app.state.services.engine.models
    assert models is not None and _walked_by_collections(models)
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert not _walked_by_collections(models)
        assert gc.get_threshold() == (*threshold[:2], FULL_COLLECTION_THRESHOLD)
    assert _walked_by_collections(models)
    assert gc.get_threshold() == threshold
    assert gc.get_freeze_count() == 0


def test_models_loaded_by_a_reload_are_frozen_too(served_world: ServedWorld) -> None:
    app = create_app(served_world.settings())
    with promoted_version_copied(served_world, "frozen") as version, TestClient(app) as api:
        version.registry.promote(version.copy)
        assert api.post("/v1/models/reload").json()["serving"] == version.copy
        reloaded = app.state.services.engine.models
        assert reloaded.version == version.copy and not _walked_by_collections(reloaded)
        assert api.get(f"/v1/users/{served_world.users[3]}/decision").status_code == 200


def _blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_blas_runs_on_one_thread_while_serving(served_world: ServedWorld) -> None:
    before = _blas_threads()
    assert before  # numpy's BLAS is found
    with TestClient(create_app(served_world.settings())) as client:
        assert client.get("/healthz").status_code == 200
        assert _blas_threads() == [1] * len(before)
    assert _blas_threads() == before
