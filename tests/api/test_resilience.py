"""A Redis outage degrades answers, never fails them; models reload under traffic."""

from __future__ import annotations

import re
import shutil
import threading
import time
from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from models.registry import PROMOTED
from nbo.redis_server import EmbeddedRedis
from nbo.settings import Settings
from tests.api.conftest import ServedWorld, promoted_version_copied


def test_an_outage_degrades_then_recovers(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    settings = Settings(redis_url=server.url, models_dir=tmp_path / "models",
                        data_dir=tmp_path / "data", redis_retry_after_s=0.2)
    try:
        with TestClient(create_app(settings)) as client:
            before = client.get("/v1/users/u1/decision")
            assert before.status_code == 200 and before.json()["degraded"] is False
            server.stop()
            during = client.get("/v1/users/u1/decision")
            assert during.status_code == 200, during.text
            assert during.json()["degraded"] is True and during.json()["source"] == "degraded"
            assert client.post("/v1/decisions", json={"user_ids": ["u1", "u2"]}).json()[
                "decisions"][1]["degraded"] is True
            assert client.get("/readyz").status_code == 503
            events = client.post("/v1/events", json={"events": [
                {"user_id": "u1", "ts": "2026-01-01T00:00:00Z", "event_type": "view"}]})
            assert events.status_code == 503  # not stored: the caller must retry
            errors = re.search(r"^nbo_redis_errors_total (\S+)$", client.get("/metrics").text,
                               re.MULTILINE)
            assert errors is not None and float(errors.group(1)) >= 1
            server.start()
            time.sleep(0.3)
            after = client.get("/v1/users/u1/decision")
            assert after.status_code == 200 and after.json()["degraded"] is False
    finally:
        server.stop()


def test_a_reload_under_traffic_fails_no_request(served_world: ServedWorld) -> None:
    statuses: list[int] = []
    stop = threading.Event()
    with promoted_version_copied(served_world, "copy") as version:
        registry, client, original, copy = (version.registry, version.client, version.original,
                                            version.copy)
        with TestClient(create_app(served_world.settings())) as api:
            def hammer() -> None:
                while not stop.is_set():
                    statuses.append(api.get(f"/v1/users/{served_world.users[3]}/decision")
                                    .status_code)

            worker = threading.Thread(target=hammer)
            worker.start()
            registry.promote(copy)
            assert api.post("/v1/models/reload").json()["serving"] == copy
            time.sleep(0.2)
            stop.set()
            worker.join()
            assert api.get("/v1/models").json()["serving"] == copy
            assert statuses and set(statuses) == {200}
            broken = f"{original}-broken"
            shutil.copytree(served_world.models / original, served_world.models / broken)
            (served_world.models / broken / "send_time.json").write_text("{}")
            client.set(PROMOTED, broken)  # as if someone forced it past the checks
            refused = api.post("/v1/models/reload")
            assert refused.status_code == 409 and "corrupt" in refused.json()["detail"]
            assert api.get("/v1/models").json()["serving"] == copy
            assert api.get(f"/v1/users/{served_world.users[3]}/decision").status_code == 200
