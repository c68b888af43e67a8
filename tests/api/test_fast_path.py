"""Single decisions beneath FastAPI (api/fast_path.py): the same requests and answers as
FastAPI's route, for every query, key and error; FastAPI still answers what it refuses."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.datastructures import Headers

from api import fast_path
from api.app import create_app
from api.fast_path import Answer, Understand
from api.services import Services
from decisions.outcome import Decision, DecisionRequest
from nbo.errors import NboError
from nbo.redis_plan import Plan
from tests.api.conftest import ServedWorld

KEYS = {"k-decide-0123456789": "decide", "k-ingest-0123456789": "ingest"}


class _Seen:
    """The requests an app's engine was asked to decide (or to recall a campaign's for)."""

    def __init__(self, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
        self.requests: list[DecisionRequest] = []
        engine = client.app.state.services.engine  # type: ignore[attr-defined]
        decide_plan = engine.decide_plan

        def recorded(requests: list[DecisionRequest], *rest: Any) -> Plan[list[Decision]]:
            self.requests += requests
            decisions: list[Decision] = yield from decide_plan(requests, *rest)
            return decisions

        recall_or_decide_plan = engine.recall_or_decide_plan

        def recorded_recall(requests: list[DecisionRequest], *rest: Any,
                            **options: Any) -> Plan[Any]:
            self.requests += requests
            return (yield from recall_or_decide_plan(requests, *rest, **options))

        monkeypatch.setattr(engine, "decide_plan", recorded)
        monkeypatch.setattr(engine, "recall_or_decide_plan", recorded_recall)


@dataclass
class _Apps:
    """The app with the fast path and the app without it, over the same world."""

    fast: TestClient
    reference: TestClient
    seen_fast: _Seen
    seen_reference: _Seen
    answered_fast: list[str]  # user ids of the decisions the fast path answered

    def answered_alike(self, path: str, user_id: str) -> tuple[Response, Response]:
        """GET `path` from both apps, holding them to the same status and engine requests,
        and the fast path to answering exactly the valid requests."""
        answer, expected = self.get(path)
        assert answer.status_code == expected.status_code, (path, answer.text, expected.text)
        # the engine was asked the same question, and the route's own code answered it
        assert self.seen_fast.requests == self.seen_reference.requests
        assert self.answered_fast == ([user_id] if expected.status_code == 200 else [])
        assert answer.headers["content-type"] == expected.headers["content-type"]
        return answer, expected

    def get(self, path: str, **options: Any) -> tuple[Response, Response]:
        for recorded in (self.seen_fast.requests, self.seen_reference.requests,
                         self.answered_fast):
            recorded.clear()
        return self.fast.get(path, **options), self.reference.get(path, **options)


@contextmanager
def _apps(served_world: ServedWorld, monkeypatch: pytest.MonkeyPatch,
          keys: dict[str, str]) -> Iterator[_Apps]:
    answered: list[str] = []

    def counted(understand: Understand) -> Understand:
        def understood(services: Services, path: Mapping[str, str], query: bytes,
                       headers: Headers) -> Answer | None:
            answer = understand(services, path, query, headers)
            if answer is not None:
                answered.append(path["user_id"])
            return answer
        return understood

    monkeypatch.setattr(fast_path, "FAST_ROUTES", tuple(
        (route, counted(understand)) for route, understand in fast_path.FAST_ROUTES))
    with (TestClient(create_app(served_world.settings(api_keys=keys)),
                     raise_server_exceptions=False) as fast,
          TestClient(create_app(served_world.settings(api_keys=keys, decision_fast_path=False)),
                     raise_server_exceptions=False) as reference):
        yield _Apps(fast, reference, _Seen(fast, monkeypatch), _Seen(reference, monkeypatch),
                    answered)


@pytest.fixture
def apps(served_world: ServedWorld, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Apps]:
    with _apps(served_world, monkeypatch, {}) as both:
        yield both


@pytest.fixture
def apps_with_keys(served_world: ServedWorld,
                   monkeypatch: pytest.MonkeyPatch) -> Iterator[_Apps]:
    with _apps(served_world, monkeypatch, KEYS) as both:
        yield both


_VALUES = {
    "journey": ["cart_abandoned", "welcome", "win_back", "bogus", ""],
    "channels": ["email", "email,push", " sms , in_app", "pigeon", "email,", ""],
    "campaign_id": ["spring", "x" * 129, ""],
    "n_offers": ["0", "3", "50", "51", "-1", "two", ""],
    "n_categories": ["1", "7", "99"],
    "n_items": ["0", "5", "x"],
    "explain": ["true", "false", "1", "no", "maybe", ""],
    "unknown": ["1"],
    "format": ["json", "html", "pdf", ""],  # blocks only
}
_PAIRS = st.lists(st.sampled_from(sorted(_VALUES)).flatmap(
    lambda name: st.tuples(st.just(name), st.sampled_from(_VALUES[name]))), max_size=5)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pairs=_PAIRS, user=st.sampled_from(["known", "unknown", "x" * 128, "x" * 129]))
def test_the_same_request_and_answer_as_fastapi_for_any_query(
        apps: _Apps, served_world: ServedWorld, pairs: list[tuple[str, str]],
        user: str) -> None:
    user_id = served_world.users[0] if user == "known" else user
    path = f"/v1/users/{user_id}/decision?{urlencode(pairs)}"

    answer, expected = apps.answered_alike(path, user_id)

    if expected.status_code == 200:
        assert answer.json()["user_id"] == expected.json()["user_id"] == user_id
    else:  # refused by FastAPI, in its words
        assert answer.json() == expected.json()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pairs=_PAIRS, block=st.sampled_from(["offer", "recommendations", "banner"]),
       user=st.sampled_from(["known", "unknown", "x" * 129]))
def test_blocks_are_the_same_as_fastapi_answers_them_for_any_query(
        apps: _Apps, served_world: ServedWorld, pairs: list[tuple[str, str]], block: str,
        user: str) -> None:
    user_id = served_world.users[4] if user == "known" else user
    path = f"/v1/users/{user_id}/blocks/{block}?{urlencode(pairs)}"

    answer, expected = apps.answered_alike(path, user_id)

    campaign = dict(pairs).get("campaign_id")
    if expected.status_code != 200 or campaign:  # an error, or the campaign's one block
        assert answer.content == expected.content
        assert answer.headers.get("etag") == expected.headers.get("etag")


def test_a_block_not_changed_since_is_304_beneath_fastapi_too(apps: _Apps,
                                                               served_world: ServedWorld) -> None:
    path = f"/v1/users/{served_world.users[5]}/blocks/offer?campaign_id=autumn&format=json"
    etag = apps.fast.get(path).headers["etag"]

    answer, expected = apps.get(path, headers={"If-None-Match": etag})

    assert answer.status_code == expected.status_code == 304
    assert answer.headers["etag"] == expected.headers["etag"] == etag
    assert apps.answered_fast == [served_world.users[5]]
    # the header sent as two field lines is one list, its tag in the second
    answer, expected = apps.get(path, headers=[("If-None-Match", '"x"'),
                                               ("If-None-Match", etag)])
    assert answer.status_code == expected.status_code == 304


@pytest.mark.parametrize(("headers", "status", "fast"), [
    ({"X-API-Key": "k-decide-0123456789"}, 200, True),
    ({"Authorization": "Bearer k-decide-0123456789"}, 200, True),
    ({"Authorization": "bearer   k-decide-0123456789 "}, 200, True),
    ({"X-API-Key": "k-ingest-0123456789"}, 403, False),
    ({"X-API-Key": "not-a-key"}, 401, False),
    ({"Authorization": "Basic k-decide-0123456789"}, 401, False),
    ({"X-API-Key": "", "Authorization": "Bearer k-decide-0123456789"}, 200, True),
    ({}, 401, False),
])
def test_keys_are_checked_as_fastapi_checks_them(
        apps_with_keys: _Apps, served_world: ServedWorld, headers: dict[str, str],
        status: int, fast: bool) -> None:
    answer, expected = apps_with_keys.get(f"/v1/users/{served_world.users[1]}/decision",
                                          headers=headers)
    assert answer.status_code == expected.status_code == status
    assert bool(apps_with_keys.answered_fast) is fast
    if status != 200:
        assert answer.json() == expected.json()
        assert answer.headers.get("www-authenticate") == expected.headers.get(
            "www-authenticate")


class _Conflict(NboError):
    http_status = 409


def test_nbo_errors_while_deciding_are_answered_as_fastapi_answers_them(
        apps: _Apps, served_world: ServedWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*_: Any) -> Plan[list[Decision]]:
        raise _Conflict("the catalog is being replaced; try again")
        yield  # a generator, as plans are

    for client in (apps.fast, apps.reference):
        monkeypatch.setattr(client.app.state.services.engine,  # type: ignore[attr-defined]
                            "decide_plan", refused)
    answer, expected = apps.get(f"/v1/users/{served_world.users[2]}/decision")
    assert answer.status_code == expected.status_code == 409
    assert answer.json() == expected.json() == {
        "error": "conflict", "detail": "the catalog is being replaced; try again"}
    assert apps.answered_fast == [served_world.users[2]]


def test_fast_answers_are_timed_and_counted_under_the_route(apps: _Apps,
                                                             served_world: ServedWorld) -> None:
    for user in served_world.users[:3]:
        assert apps.fast.get(f"/v1/users/{user}/decision").status_code == 200
    text = apps.fast.get("/metrics").text
    timed = next(line for line in text.splitlines() if line.startswith(
        'nbo_request_seconds_count{method="GET",route="/v1/users/{user_id}/decision",'
        'status="200"}'))
    assert float(timed.rsplit(" ", 1)[1]) == 3
    assert 'nbo_decisions_total{source="model"} 3.0' in text
    assert apps.answered_fast == served_world.users[:3]


@pytest.mark.parametrize(("method", "path", "status"), [
    ("HEAD", "/v1/users/{user}/decision", 405),
    ("POST", "/v1/users/{user}/decision", 405),
    ("GET", "/v1/users/{user}/decision/", 307),
    ("GET", "/v1/users/{user}/blocks/offer/", 307),
    ("GET", "/v1/items/{user}/similar", 404),
    ("GET", "/healthz", 200),
])
def test_other_requests_pass_through(apps: _Apps, served_world: ServedWorld, method: str,
                                     path: str, status: int) -> None:
    url = path.format(user=served_world.users[3])
    answers = [client.request(method, url, follow_redirects=False)
               for client in (apps.fast, apps.reference)]
    assert [answer.status_code for answer in answers] == [status, status]
    assert apps.answered_fast == []


@pytest.mark.parametrize("route", ["decision", "blocks/offer"])
@pytest.mark.parametrize(("encoded", "character"), [("%01", "\x01"), ("%0A", "\n"),
                                                    ("%0D", "\r")])
def test_a_user_id_with_a_control_character_is_refused_as_the_batch_refuses_it(
        apps: _Apps, route: str, encoded: str, character: str) -> None:
    """A line feed too (Starlette's patterns did not match one: no route, a 404)."""
    answer, expected = apps.answered_alike(f"/v1/users/a{encoded}b/{route}", f"a{character}b")
    assert answer.status_code == 422 and answer.json() == expected.json()
    assert "must not contain control characters" in answer.text
    batch = apps.reference.post("/v1/decisions", json={"user_ids": [f"a{character}b"]})
    assert batch.status_code == 422 and "control characters" in batch.text
    item = apps.reference.get(f"/v1/items/a{encoded}b/similar")
    assert item.status_code == 422 and "control characters" in item.text
