"""The budget benchmark's replayed decisions (benchmarks/serving/replayed.py): after the
first users, every request is answered without deciding, by a replay logged like a
decision, at the CPU cost asked."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from benchmarks.serving.replayed import REPLAYED_USERS, burn, replay_decisions
from decisions import keys
from decisions.engine import DecisionEngine
from tests.api.conftest import ServedWorld


@pytest.fixture
def stages_run(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many users the engine's stages decided, call by call."""
    calls: list[int] = []
    real = DecisionEngine._send_hours

    def counted(subjects, call):  # type: ignore[no-untyped-def]
        calls.append(len(subjects))
        return real(subjects, call)

    monkeypatch.setattr(DecisionEngine, "_send_hours", staticmethod(counted))
    return calls


@pytest.fixture
def replaying() -> Iterator[None]:
    undo = replay_decisions(300)
    try:
        yield
    finally:
        undo()


def test_replays_answer_after_the_first_users_and_are_logged(
        served_world: ServedWorld, stages_run: list[int], replaying: None) -> None:
    users = served_world.users[:REPLAYED_USERS + 5]
    client = redis.Redis.from_url(served_world.redis_url)
    with TestClient(create_app(served_world.settings())) as api:
        answers = [api.get(f"/v1/users/{user}/decision").json() for user in users]
        explained = api.get(f"/v1/users/{users[-1]}/decision", params={"explain": "true"})
    assert sum(stages_run) == REPLAYED_USERS + 1  # the first users, then the explained one
    assert explained.json()["explanation"]
    first = {tuple(o["offer_id"] for o in answer["offers"]) for answer in answers[:REPLAYED_USERS]}
    for user, answer in zip(users, answers, strict=True):
        assert answer["user_id"] == user
        summary: dict[bytes, bytes] = client.hgetall(  # type: ignore[assignment]
            keys.decision(answer["decision_id"]))
        assert summary[b"user_id"].decode() == user
    assert len({answer["decision_id"] for answer in answers}) == len(users)
    assert {tuple(o["offer_id"] for o in answer["offers"])
            for answer in answers[REPLAYED_USERS:]} <= first


def test_undone_the_engine_decides_again(served_world: ServedWorld,
                                         stages_run: list[int]) -> None:
    replay_decisions(0)()
    with TestClient(create_app(served_world.settings())) as api:
        for user in served_world.users[:REPLAYED_USERS + 2]:
            assert api.get(f"/v1/users/{user}/decision").status_code == 200
    assert sum(stages_run) == REPLAYED_USERS + 2


def test_a_replay_burns_the_cpu_time_asked() -> None:
    began = time.thread_time()
    burn(0.003)
    assert time.thread_time() - began >= 0.003
