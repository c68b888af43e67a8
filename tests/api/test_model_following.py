"""Every worker serves the promoted model version: a promotion, or a reload answered by one
worker, reaches the others within NBO_MODEL_POLL_S, each app here standing for a worker."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable

import orjson
import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from api.services import ModelLoadError, Services
from models.registry import PROMOTED, RELOADS, ModelRegistry, ModelVersionError
from models.serving import ServingModels
from tests.api.conftest import ServedWorld, VersionCopy, promoted_version_copied

POLL_S = 0.1


def _eventually(check: Callable[[], bool], within_s: float = 10.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def _serving(worker: TestClient) -> str:
    return str(worker.get("/v1/models").json()["serving"])


def test_a_reload_answered_by_one_worker_reaches_the_others(served_world: ServedWorld) -> None:
    settings = served_world.settings(model_poll_s=POLL_S)
    with (promoted_version_copied(served_world, "followed") as version,
          TestClient(create_app(settings)) as first, TestClient(create_app(settings)) as other):
        version.registry.promote(version.copy)
        answer = first.post("/v1/models/reload").json()
        assert answer == {"serving": version.copy, "others_within_s": POLL_S}
        assert _eventually(lambda: _serving(other) == version.copy)
        decision = other.get(f"/v1/users/{served_world.users[0]}/decision").json()
        assert decision["model_version"] == version.copy


def test_a_version_that_fails_to_load_is_logged_once_and_the_old_one_serves(
        served_world: ServedWorld, caplog: pytest.LogCaptureFixture) -> None:
    settings = served_world.settings(model_poll_s=POLL_S)
    with (promoted_version_copied(served_world, "unloadable") as version,
          TestClient(create_app(settings)) as worker):
        _unloadable(version, served_world)
        with caplog.at_level(logging.WARNING, logger="api.services"):
            assert _eventually(lambda: any("not serving the promoted model version" in r.message
                                           for r in caplog.records))
            time.sleep(10 * POLL_S)
        warned = [r for r in caplog.records if "not serving the promoted" in r.message]
        assert len(warned) == 1
        assert _serving(worker) == version.original
        refused = worker.post("/v1/models/reload")
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"] == "model_load_error"
        assert f"still serving {version.original}" in refused.json()["detail"]
        assert worker.get(f"/v1/users/{served_world.users[0]}/decision").status_code == 200


def _unloadable(version: VersionCopy, served_world: ServedWorld) -> None:
    """Make the copy verify but fail to load, and promote it."""
    copy = served_world.models / version.copy
    (copy / "send_time.json").write_text("{}")  # its checksum made to match: it verifies
    checksums = json.loads((copy / "checksums.json").read_text())
    checksums["send_time.json"] = hashlib.sha256(b"{}").hexdigest()
    (copy / "checksums.json").write_text(json.dumps(checksums))
    version.registry.promote(version.copy)


def _loads_counted(services: Services, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The versions `services` loads from now on, in order."""
    loads: list[str] = []
    load = services._load

    def counted(wanted: str, current: ServingModels | None) -> ServingModels:
        loads.append(wanted)
        return load(wanted, current)

    monkeypatch.setattr(services, "_load", counted)
    return loads


def test_a_reload_that_failed_is_not_tried_again_by_the_polling(
        served_world: ServedWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker answering the reload knew the version fails, and loaded it (seconds of
    compiling, a second traceback) at its next poll all the same."""
    services = Services.build(served_world.settings(model_poll_s=0))
    with promoted_version_copied(served_world, "unloadable-reload") as version:
        _unloadable(version, served_world)
        loads = _loads_counted(services, monkeypatch)
        with pytest.raises(ModelLoadError):
            services.reload_models()
        services.follow_promoted()
        services.follow_promoted()
        assert loads == [version.copy]
        assert services.engine.models is not None
        assert services.engine.models.version == version.original


def test_a_promoted_version_whose_checksums_broke_is_refused_with_a_409(
        served_world: ServedWorld) -> None:
    """Promoted when whole; its checksums file broken after: the reload says so, the
    workers keep the version they serve, and a new worker still starts."""
    with (promoted_version_copied(served_world, "bad-checksums") as version,
          TestClient(create_app(served_world.settings())) as worker):
        version.registry.promote(version.copy)
        (served_world.models / version.copy / "checksums.json").write_text('{"meta.json": "ab')
        refused = worker.post("/v1/models/reload")
        assert refused.status_code == 409, refused.text
        assert "checksums.json is not readable JSON" in refused.json()["detail"]
        assert _serving(worker) == version.original
        with TestClient(create_app(served_world.settings())) as started:
            assert started.get("/healthz").status_code == 200
            assert started.get(f"/v1/users/{served_world.users[0]}/decision").status_code == 200


def test_a_version_mended_then_reloaded_by_one_worker_reaches_one_that_saw_it_fail(
        served_world: ServedWorld) -> None:
    """The other worker kept skipping the version it saw fail, and served the old one for
    good: two versions answered side by side."""
    first, other = (Services.build(served_world.settings(model_poll_s=0)) for _ in range(2))
    with promoted_version_copied(served_world, "mended") as version:
        copy = served_world.models / version.copy
        whole = (copy / "send_time.json").read_bytes(), (copy / "checksums.json").read_bytes()
        _unloadable(version, served_world)
        other.follow_promoted()
        assert other.engine.models is not None
        assert other.engine.models.version == version.original  # it failed there
        (copy / "send_time.json").write_bytes(whole[0])  # mended
        (copy / "checksums.json").write_bytes(whole[1])
        assert first.reload_models() == version.copy
        other.follow_promoted()
        assert other.engine.models.version == version.copy


def test_a_version_that_failed_is_tried_again_once_promoted_again(
        served_world: ServedWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """Promoted, failed; the served version promoted back; the first promoted again (its
    files mended or not): tried once more, not skipped for good."""
    worker = Services.build(served_world.settings(model_poll_s=0))
    with promoted_version_copied(served_world, "again") as version:
        _unloadable(version, served_world)
        loads = _loads_counted(worker, monkeypatch)
        worker.follow_promoted()
        version.registry.promote(version.original)
        worker.follow_promoted()  # served already: nothing to load
        version.registry.promote(version.copy)
        worker.follow_promoted()
        assert loads == [version.copy, version.copy]


def test_a_version_refused_by_its_own_check_at_load_says_so(
        served_world: ServedWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model trained on other columns than this release scores is refused as such, not
    as one that 'passed its checks but could not be loaded'."""
    def other_columns(*_: object) -> ServingModels:
        raise ModelVersionError("trained on other columns than this release scores")

    with (promoted_version_copied(served_world, "other-columns") as version,
          TestClient(create_app(served_world.settings())) as worker):
        version.registry.promote(version.copy)
        monkeypatch.setattr(ServingModels, "load", other_columns)
        refused = worker.post("/v1/models/reload")
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"] == "model_version_error"
        assert "passed its checks" not in refused.json()["detail"]
        assert _serving(worker) == version.original


def test_a_worker_starting_asks_no_other_to_reload(served_world: ServedWorld) -> None:
    """Each start counted as a reload asked: every worker loaded (and logged) a version it
    had seen fail again whenever another one started."""
    client = redis.Redis.from_url(served_world.redis_url)
    before = client.get(RELOADS)
    Services.build(served_world.settings(model_poll_s=0))
    assert client.get(RELOADS) == before
    client.close()


def test_the_learned_weekly_cap_of_the_served_version_caps_decisions(
        served_world: ServedWorld) -> None:
    """contact_volume.json's weekly cap, tighter than the configured one, is the cap a
    decision's contact budget reports (docs/api.md, contact policy)."""
    client = redis.Redis.from_url(served_world.redis_url)
    registry = ModelRegistry(served_world.models, client)
    original = registry.promoted()
    assert original is not None
    source = registry.get(original)
    volume = orjson.loads(source.artifact("contact_volume.json")) | {"weekly_cap": 2}
    artifacts = {path.name: path.read_bytes() for path in source.path.iterdir()
                 if path.name not in {"meta.json", "metrics.json", "checksums.json"}}
    copy = registry.register(artifacts | {"contact_volume.json": orjson.dumps(volume)},
                             {k: v for k, v in source.meta.items() if k != "version"},
                             source.metrics, version=f"{original}-capped")
    registry.promote(copy.version)
    try:
        caps = {"*": [(7, 20)]}
        with TestClient(create_app(served_world.settings(contact_caps=caps))) as api:
            budget = api.get(f"/v1/users/{served_world.users[7]}/decision").json()[
                "contact_budget"]
    finally:
        client.set(PROMOTED, original)
        client.close()
        shutil.rmtree(copy.path)
    assert (budget["window_days"], budget["cap"]) == (7, 2)
