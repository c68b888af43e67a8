"""A Redis outage degrades answers, never fails them with a 500; models reload under
traffic."""

from __future__ import annotations

import logging
import re
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from decisions import keys
from decisions.outcome import DecisionRequest
from features.store import keys as keys_store
from models.registry import PROMOTED
from nbo.redis_plan import Step, execute, run, run_blocking
from nbo.redis_server import EmbeddedRedis
from nbo.settings import Settings
from tests.api.conftest import ServedWorld, promoted_version_copied

OFFER = {"offer_id": "flash-3", "kind": "voucher", "value": 3, "cost": 3}
CATALOG_AND_MODEL_CALLS = [
    ("GET", "/v1/offers", None), ("GET", "/v1/offers/flash-3", None),
    ("PUT", "/v1/offers/flash-3", OFFER), ("DELETE", "/v1/offers/flash-3", None),
    ("GET", "/v1/models", None), ("POST", "/v1/models/reload", None),
]


@dataclass(frozen=True)
class OwnRedis:
    """A Redis server of the test's own, which it may stop and start again."""

    server: EmbeddedRedis
    settings: Settings


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    try:
        yield OwnRedis(server, Settings(redis_url=server.url, models_dir=tmp_path / "models",
                                        data_dir=tmp_path / "data", redis_retry_after_s=0.2))
    finally:
        server.stop()


def redis_errors(client: TestClient) -> float:
    found = re.search(r"^nbo_redis_errors_total (\S+)$", client.get("/metrics").text,
                      re.MULTILINE)
    assert found is not None
    return float(found.group(1))


def test_an_outage_degrades_then_recovers(own_redis: OwnRedis) -> None:
    server = own_redis.server
    with TestClient(create_app(own_redis.settings)) as client:
        before = client.get("/v1/users/u1/decision")
        assert before.status_code == 200 and before.json()["degraded"] is False
        server.stop()
        during = client.get("/v1/users/u1/decision")
        assert during.status_code == 200, during.text
        assert during.json()["degraded"] is True and during.json()["source"] == "degraded"
        assert client.post("/v1/decisions", json={"user_ids": ["u1", "u2"]}).json()[
            "decisions"][1]["degraded"] is True
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["problems"][0].startswith("Redis unreachable")
        assert str(server.socket_path) not in ready.text  # the path goes to the log only
        events = client.post("/v1/events", json={"events": [
            {"user_id": "u1", "ts": "2026-01-01T00:00:00Z", "event_type": "view"}]})
        assert events.status_code == 503  # not stored: the caller must retry
        assert redis_errors(client) >= 1
        server.start()
        time.sleep(0.3)
        after = client.get("/v1/users/u1/decision")
        assert after.status_code == 200 and after.json()["degraded"] is False


def test_an_outage_answers_catalog_and_model_calls_503_then_recovers(
    own_redis: OwnRedis, caplog: pytest.LogCaptureFixture,
) -> None:
    server = own_redis.server
    with TestClient(create_app(own_redis.settings), raise_server_exceptions=False) as client:
        assert client.put("/v1/offers/flash-3", json=OFFER).status_code == 200
        errors_before = redis_errors(client)
        server.stop()
        with caplog.at_level(logging.WARNING, logger="api.errors"):
            answers = {f"{method} {path}": client.request(method, path, json=body)
                       for method, path, body in CATALOG_AND_MODEL_CALLS}
        for call, response in answers.items():
            assert response.status_code == 503, f"{call}: {response.status_code} {response.text}"
            assert response.headers["retry-after"] == "1"  # NBO_REDIS_RETRY_AFTER_S rounded up
            body = response.json()
            assert set(body) == {"error", "detail"}
            assert body["error"] == "redis_unavailable_error"
            assert "Redis is unreachable" in body["detail"] and "retry" in body["detail"]
            assert str(server.socket_path) not in response.text  # it stays in the log
        assert redis_errors(client) - errors_before >= len(CATALOG_AND_MODEL_CALLS)
        warned = [r for r in caplog.records
                  if r.name == "api.errors" and r.levelno == logging.WARNING]
        assert len(warned) == len(CATALOG_AND_MODEL_CALLS)
        server.start()
        assert client.get("/v1/offers/flash-3").status_code == 200
        assert client.put("/v1/offers/flash-3", json=OFFER).status_code == 200
        assert client.get("/v1/offers").json()["offers"][0]["offer_id"] == "flash-3"
        assert client.delete("/v1/offers/flash-3").status_code == 200
        assert client.get("/v1/models").status_code == 200
        assert client.post("/v1/models/reload").status_code == 409  # none promoted: not 503


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


def test_an_outage_holds_back_the_offers_whose_limits_live_in_redis(
        served_world: ServedWorld) -> None:
    """What was spent and given is in Redis: while it cannot be reached, an offer with a
    budget or a max_per_user is not made (neither limit can be kept blind); one with
    neither still is."""
    limited: dict[str, dict[str, object]] = {
        "outage-budget": {"budget": 1000.0}, "outage-per-user": {"max_per_user": 3},
        "outage-free": {}}
    with TestClient(create_app(served_world.settings(redis_retry_after_s=60))) as api:
        for offer_id, limits in limited.items():
            offer = {"offer_id": offer_id, "kind": "voucher", "value": 1, "cost": 0.01,
                     **limits}
            assert api.put(f"/v1/offers/{offer_id}", json=offer).status_code == 200
        try:
            params = {"n_offers": 50, "explain": "true"}
            user = served_world.users[5]
            before = api.get(f"/v1/users/{user}/decision", params=params).json()
            assert not before["degraded"]
            assert not set(limited) & set(before["explanation"]["removed"])
            api.app.state.services.engine.redis_failed()  # type: ignore[attr-defined]
            during = api.get(f"/v1/users/{user}/decision", params=params).json()
        finally:
            for offer_id in limited:
                api.delete(f"/v1/offers/{offer_id}")
    assert during["degraded"]
    removed = during["explanation"]["removed"]
    assert "budget" in removed["outage-budget"]
    assert "max_per_user" in removed["outage-per-user"]
    assert "outage-free" not in removed
    assert not {"outage-budget", "outage-per-user"} & {o["offer_id"] for o in during["offers"]}


def test_decisions_made_during_an_outage_are_logged_once_it_is_over(
        own_redis: OwnRedis) -> None:
    server = own_redis.server
    with TestClient(create_app(own_redis.settings)) as client:
        server.stop()
        during = client.get("/v1/users/u1/decision").json()
        assert during["degraded"] is True
        lost = client.post("/v1/feedback", json={"decision_id": during["decision_id"],
                                                 "type": "impression"})
        assert lost.status_code == 503
        server.start()
        time.sleep(0.3)
        after = client.get("/v1/users/u2/decision").json()  # its log takes the earlier one
        assert after["degraded"] is False
        for decision in (during, after):
            feedback = client.post("/v1/feedback", json={
                "decision_id": decision["decision_id"], "type": "impression"})
            assert feedback.status_code == 200, feedback.text
        logged: list[tuple[bytes, dict[bytes, bytes]]] = redis.Redis.from_url(  # type: ignore[assignment]
            server.url).xrange(keys.DECISIONS)
        assert [orjson.loads(fields[b"d"])["decision_id"] for _, fields in logged] == [
            during["decision_id"], after["decision_id"]]


def test_a_decision_of_an_outage_joins_its_feedback_with_nothing_decided_after(
        own_redis: OwnRedis) -> None:
    """Its feedback is not refused as an unknown decision once Redis is back, and the
    worker logs it by itself."""
    server = own_redis.server
    client = redis.Redis.from_url(server.url)
    with TestClient(create_app(own_redis.settings)) as api:
        server.stop()
        first, second = (api.get(f"/v1/users/{user}/decision").json() for user in ("u1", "u2"))
        assert first["degraded"] and second["degraded"]
        server.start()
        time.sleep(0.3)  # past redis_retry_after_s
        feedback = api.post("/v1/feedback", json={"decision_id": first["decision_id"],
                                                  "type": "click"})
        assert feedback.status_code == 200, feedback.text
        server.stop()
        third = api.get("/v1/users/u3/decision").json()
        assert third["degraded"]
        server.start()
        deadline = time.monotonic() + 5
        while client.xlen(keys.DECISIONS) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)  # no request: the worker logs it by itself
        entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(  # type: ignore[assignment]
            keys.DECISIONS)
        logged = [orjson.loads(fields[b"d"])["decision_id"] for _, fields in entries]
        assert logged == [first["decision_id"], second["decision_id"], third["decision_id"]]
    client.close()


def test_a_log_write_applied_but_unanswered_is_not_logged_twice(
        served_world: ServedWorld) -> None:
    """Redis wrote the decision log but its reply was lost (a timeout): the write is sent
    again, and neither the log nor the offers' chosen counts take a decision twice."""
    client = redis.Redis.from_url(served_world.redis_url)

    def reply_lost_for_the_log(step: Step) -> list[Any]:
        replies = execute(client, step)
        if any(command[:2] == ("XADD", keys.DECISIONS) for command in step.commands):
            raise redis.TimeoutError("Timeout reading from socket")
        return replies

    def chosen() -> Counter[str]:
        counts: dict[bytes, bytes] = client.hgetall(keys.CHOSEN)  # type: ignore[assignment]
        return Counter({offer.decode(): int(n) for offer, n in counts.items()})

    with TestClient(create_app(served_world.settings(redis_retry_after_s=0.05))) as api:
        engine = api.app.state.services.engine  # type: ignore[attr-defined]
        before = chosen()
        decided = run_blocking(engine.decide_plan(
            [DecisionRequest(user) for user in served_world.users[:8]]), reply_lost_for_the_log)
        time.sleep(0.1)  # past redis_retry_after_s
        run(client, engine.log_unlogged_plan())
        entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(  # type: ignore[assignment]
            keys.DECISIONS)
    logged = Counter(orjson.loads(fields[b"d"])["decision_id"] for _, fields in entries)
    assert [logged[decision.decision_id] for decision in decided] == [1] * len(decided)
    offers = Counter(offer.offer_id for decision in decided for offer in decision.offers)
    assert offers and chosen() - before == offers
    client.close()


def test_a_feature_version_without_its_metadata_answers_decisions_and_refuses_events(
        own_redis: OwnRedis) -> None:
    """Evicted under the version a worker starting now finds: decisions answered 500 (for
    good, a publish after did not help), as did events."""
    event = {"user_id": "u1", "event_type": "view", "category": "tea",
             "ts": "2026-01-01T00:00:00Z"}
    with TestClient(create_app(own_redis.settings)) as client:
        assert client.post("/v1/events", json={"events": [event]}).status_code == 200
    redis_client = redis.Redis.from_url(own_redis.server.url)
    current = redis_client.get(keys_store.CURRENT)
    assert isinstance(current, bytes)
    redis_client.delete(keys_store.meta(current.decode()))
    with TestClient(create_app(own_redis.settings)) as client:
        decision = client.get("/v1/users/u1/decision")
        assert decision.status_code == 200 and decision.json()["source"] == "global"
        refused = client.post("/v1/events", json={"events": [event]})
        assert refused.status_code == 503, refused.text
        assert "nbo publish" in refused.text
    redis_client.close()
