"""Per-user requests run on the event loop, or on NBO_REQUEST_THREADS threads per worker
(api/services.py)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from decisions.outcome import Decision
from tests.api.conftest import ServedWorld


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.mark.parametrize("threads", [0, 1, 2])
def test_decisions_take_turns_on_the_request_path_threads(
        served_world: ServedWorld, monkeypatch: pytest.MonkeyPatch, threads: int) -> None:
    with TestClient(create_app(served_world.settings(request_threads=threads))) as api:
        engine = api.app.state.services.engine  # type: ignore[attr-defined]
        decide = engine.decide
        lock = threading.Lock()
        running, most = 0, 0
        on_loop: list[bool] = []

        def counted(*arguments: Any) -> Decision:
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
                on_loop.append(_on_event_loop())
            time.sleep(0.05)  # long enough for the other requests to arrive meanwhile
            try:
                return decide(*arguments)  # type: ignore[no-any-return]
            finally:
                with lock:
                    running -= 1

        monkeypatch.setattr(engine, "decide", counted)
        statuses: list[int] = []
        callers = [threading.Thread(target=lambda user=user: statuses.append(
            api.get(f"/v1/users/{user}/decision").status_code))
            for user in served_world.users[:6]]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join()
    assert statuses == [200] * 6
    assert most == max(threads, 1)
    assert on_loop == [threads == 0] * 6
