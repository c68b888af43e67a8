"""Per-user requests run on the event loop, their Redis round trips leaving it free, or on
NBO_REQUEST_THREADS threads per worker (api/services.py)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from decisions.outcome import Decision, DecisionRequest
from nbo.redis_plan import Plan, Step
from tests.api.conftest import ServedWorld


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.mark.parametrize("threads", [0, 1, 2])
def test_requests_wait_for_redis_without_holding_the_request_path(
        served_world: ServedWorld, monkeypatch: pytest.MonkeyPatch, threads: int) -> None:
    """A slow Redis round trip stands in for a pause inside the decision's plan: on the
    event loop (0 threads) every request gets in while the others wait; on N threads,
    a waiting request holds its thread, so N at most are in at once."""
    with TestClient(create_app(served_world.settings(request_threads=threads))) as api:
        engine = api.app.state.services.engine  # type: ignore[attr-defined]
        decide_plan = engine.decide_plan
        lock = threading.Lock()
        running, most = 0, 0
        on_loop: list[bool] = []

        def slowed(requests: list[DecisionRequest], *rest: Any) -> Plan[list[Decision]]:
            nonlocal running, most  # in requests: those asked together are decided together
            with lock:
                running += len(requests)
                most = max(most, running)
                on_loop.extend([_on_event_loop()] * len(requests))
            try:
                yield Step(pause_s=0.1)  # long enough for the other requests to arrive
                decisions: list[Decision] = yield from decide_plan(requests, *rest)
                return decisions
            finally:
                with lock:
                    running -= len(requests)

        monkeypatch.setattr(engine, "decide_plan", slowed)
        statuses: list[int] = []
        callers = [threading.Thread(target=lambda user=user: statuses.append(
            api.get(f"/v1/users/{user}/decision").status_code))
            for user in served_world.users[:6]]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join()
    assert statuses == [200] * 6
    assert most > 1 if threads == 0 else most == threads
    assert on_loop == [threads == 0] * 6
