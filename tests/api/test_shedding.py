"""Past NBO_MAX_IN_FLIGHT requests in flight, a worker answers 503 at once (api/shedding.py)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from decisions.outcome import Decision, DecisionRequest
from nbo.redis_plan import Plan, Step
from tests.api.conftest import ServedWorld


class _Held:
    """Holds every decision inside its plan until released, counting those held."""

    def __init__(self, api: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
        engine = api.app.state.services.engine  # type: ignore[attr-defined]
        decide_plan = engine.decide_plan
        self.release = threading.Event()
        self.count = 0

        def held_until_released(requests: list[DecisionRequest],
                                *rest: Any) -> Plan[list[Decision]]:
            self.count += len(requests)  # requests asked together are decided together
            while not self.release.is_set():
                yield Step(pause_s=0.01)  # the event loop stays free meanwhile
            decisions: list[Decision] = yield from decide_plan(requests, *rest)
            return decisions

        monkeypatch.setattr(engine, "decide_plan", held_until_released)

    def callers(self, api: TestClient, users: list[str],
                statuses: list[int]) -> list[threading.Thread]:
        """Requests for `users` from threads, returned once every one is held."""
        started = [threading.Thread(target=lambda user=user: statuses.append(
            api.get(f"/v1/users/{user}/decision").status_code)) for user in users]
        for caller in started:
            caller.start()
        deadline = time.monotonic() + 10
        while self.count < len(users) and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.count != len(users):
            self.finish(started)  # no caller left waiting on a failed test
        assert self.count == len(users)
        return started

    def finish(self, callers: list[threading.Thread]) -> None:
        self.release.set()
        for caller in callers:
            caller.join()


def test_requests_past_the_limit_are_refused_at_once_and_health_still_answers(
        served_world: ServedWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    with TestClient(create_app(served_world.settings(max_in_flight=2))) as api:
        held, statuses = _Held(api, monkeypatch), list[int]()
        callers = held.callers(api, served_world.users[:2], statuses)

        refused = [api.get(f"/v1/users/{user}/decision") for user in served_world.users[2:5]]
        assert [r.status_code for r in refused] == [503] * 3
        assert refused[0].headers["retry-after"] == "1"
        body = refused[0].json()
        assert body["error"] == "overloaded"
        assert "2 requests in flight" in body["detail"] and "NBO_MAX_IN_FLIGHT" in body["detail"]
        assert held.count == 2  # refused before any work
        assert api.get("/healthz").status_code == 200
        metrics = api.get("/metrics")
        assert metrics.status_code == 200
        assert "nbo_requests_refused_total 3.0" in metrics.text

        held.finish(callers)
        assert statuses == [200, 200]
        assert ('nbo_request_seconds_count{method="GET",route="/v1/users/{user_id}/decision",'
                'status="503"} 3.0') in metrics.text  # under their route, not unmatched
        assert api.get(f"/v1/users/{served_world.users[0]}/decision").status_code == 200


def test_no_limit_admits_every_request(served_world: ServedWorld,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    with TestClient(create_app(served_world.settings(max_in_flight=0))) as api:
        held, statuses = _Held(api, monkeypatch), list[int]()
        held.finish(held.callers(api, served_world.users[:4], statuses))
        assert statuses == [200] * 4
        assert "nbo_requests_refused_total 0.0" in api.get("/metrics").text
