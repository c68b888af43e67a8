"""Single decisions asked together are decided in one engine call (api/coalescing.py),
through HTTP against the served world, each request still getting its own answer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from api.coalescing import DecisionCoalescer
from decisions.outcome import Decision, DecisionRequest
from nbo.errors import NboError
from nbo.redis_plan import Plan, Step
from tests.api.conftest import ServedWorld


class _Refused(NboError):
    http_status = 409


class _Calls:
    """The sizes of the engine calls an app made for single decisions."""

    def __init__(self, app: FastAPI, monkeypatch: pytest.MonkeyPatch,
                 refuse: str | None = None) -> None:
        self.sizes: list[int] = []
        engine = app.state.services.engine
        decide_plan = engine.decide_plan

        def recorded(requests: list[DecisionRequest], *rest: Any) -> Plan[list[Decision]]:
            self.sizes.append(len(requests))
            if any(request.user_id == refuse for request in requests):
                raise _Refused(f"{refuse} is refused")
            decisions: list[Decision] = yield from decide_plan(requests, *rest)
            return decisions

        monkeypatch.setattr(engine, "decide_plan", recorded)


def _app(served_world: ServedWorld, **settings: object) -> Iterator[FastAPI]:
    app = create_app(served_world.settings(**settings))
    yield app
    app.state.services.connection.close()


@pytest.fixture
def app(served_world: ServedWorld) -> Iterator[FastAPI]:
    yield from _app(served_world)


@pytest.fixture
def app_alone(served_world: ServedWorld) -> Iterator[FastAPI]:
    yield from _app(served_world, coalesce_decisions=False)


def _ask(app: FastAPI, requests: Sequence[tuple[str, dict[str, str]]]) -> list[httpx.Response]:
    """All the requests at once, from one event loop, as concurrent clients would."""
    async def together() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://nbo") as client:
            return list(await asyncio.gather(*(
                client.get(f"/v1/users/{user}/decision", params=params)
                for user, params in requests)))

    return asyncio.run(together())


def _plain(users: Sequence[str]) -> list[tuple[str, dict[str, str]]]:
    return [(user, {}) for user in users]


def _varied(users: Sequence[str]) -> list[tuple[str, dict[str, str]]]:
    options: list[dict[str, str]] = [
        {}, {"journey": "cart_abandoned"}, {"channels": "email,sms", "n_offers": "1"},
        {"explain": "true"}, {"journey": "win_back", "n_categories": "2"}]
    return [(user, options[i % len(options)]) for i, user in enumerate(users)]


def test_decisions_asked_together_are_decided_together(
        app: FastAPI, served_world: ServedWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _Calls(app, monkeypatch)
    asked = _varied([*served_world.users[:11], "never-seen"])
    answers = _ask(app, asked)
    assert sum(calls.sizes) == len(asked) and len(calls.sizes) < len(asked)
    for (user, params), answer in zip(asked, answers, strict=True):
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["user_id"] == user and body["journey"] == params.get("journey")
        assert len(body["offers"]) <= int(params.get("n_offers", 3))
        assert len(body["categories"]) <= int(params.get("n_categories", 5))
        if "channels" in params:
            assert {c["channel"] for c in body["channels"]} == {"email", "sms"}
        assert (body["explanation"] is not None) == ("explain" in params)
    assert len({answer.json()["decision_id"] for answer in answers}) == len(asked)


def test_a_lone_request_is_decided_alone(app: FastAPI, served_world: ServedWorld,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _Calls(app, monkeypatch)
    for user in served_world.users[:3]:
        assert _ask(app, _plain([user]))[0].status_code == 200
    assert calls.sizes == [1, 1, 1]


def test_a_failing_request_fails_alone(app: FastAPI, served_world: ServedWorld,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _Calls(app, monkeypatch, refuse="refused-user")
    asked = _plain([*served_world.users[:4], "refused-user"])
    answers = _ask(app, asked)
    assert [answer.status_code for answer in answers] == [200, 200, 200, 200, 409]
    assert answers[-1].json() == {"error": "refused", "detail": "refused-user is refused"}
    assert calls.sizes[0] == len(asked) and sorted(calls.sizes[1:]) == [1] * len(asked)


def test_without_coalescing_each_request_is_its_own_call(
        app_alone: FastAPI, served_world: ServedWorld,
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _Calls(app_alone, monkeypatch)
    answers = _ask(app_alone, _varied(served_world.users[:6]))
    assert all(answer.status_code == 200 for answer in answers)
    assert calls.sizes == [1] * 6


def test_a_burst_is_decided_in_calls_of_bounded_length(
        app: FastAPI, served_world: ServedWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    services = app.state.services
    calls = _Calls(app, monkeypatch)
    coalescer = DecisionCoalescer(
        lambda requests: services.run(services.engine.decide_plan(requests)), most=4)
    users = served_world.users[:10]

    async def burst() -> list[Decision]:
        return list(await asyncio.gather(*(coalescer.decide(DecisionRequest(user))
                                           for user in users)))

    decisions = asyncio.run(burst())
    assert [decision.user_id for decision in decisions] == users
    assert calls.sizes == [4, 4, 2]


def test_requests_are_cancelled_with_their_call(
        app: FastAPI, served_world: ServedWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """A call cancelled mid-way (the loop shutting down) leaves no request waiting."""
    services = app.state.services

    def stalled(requests: list[DecisionRequest], *_: Any) -> Plan[list[Decision]]:
        yield Step(pause_s=30)  # Redis that never answers
        return []

    monkeypatch.setattr(services.engine, "decide_plan", stalled)

    async def cancelled_mid_call() -> list[BaseException | Decision]:
        asked = [asyncio.ensure_future(services.decide(DecisionRequest(user)))
                 for user in served_world.users[:3]]
        await asyncio.sleep(0.05)  # the call has started and waits on Redis
        calls = [task for task in asyncio.all_tasks()
                 if getattr(task.get_coro(), "__qualname__", "") == "DecisionCoalescer._answer"]
        assert len(calls) == 1
        calls[0].cancel()
        return list(await asyncio.wait_for(
            asyncio.gather(*asked, return_exceptions=True), timeout=5))

    outcomes = asyncio.run(cancelled_mid_call())
    assert all(isinstance(outcome, asyncio.CancelledError) for outcome in outcomes)
