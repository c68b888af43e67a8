"""One decision per (user, campaign): the decision, a batch and both blocks of a campaign
answer the same, a retried batch decides nothing again, and it is forgotten in time."""

from __future__ import annotations

import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from api.services import Services
from decisions import campaigns, keys
from decisions.campaigns import Answer
from decisions.outcome import DecisionRequest
from features.state import UserState
from features.store import redis_store
from features.store.meta import VersionMeta
from features.store.unpack import unpack
from nbo.redis_plan import LuaScript, Outcome, Plan, execute, resume
from tests.api.conftest import ServedWorld


def test_every_call_for_a_campaign_answers_its_one_decision(
        api: TestClient, served_world: ServedWorld) -> None:
    users = served_world.users[10:14]
    params = {"campaign_id": "summer", "n_offers": 2}
    single = api.get(f"/v1/users/{users[0]}/decision", params=params)
    assert single.status_code == 200
    assert single.headers["Cache-Control"].startswith("private, max-age=")
    client = redis.Redis.from_url(served_world.redis_url)
    try:
        batch = api.post("/v1/decisions", json={"user_ids": users, **params})
        assert batch.status_code == 200, batch.text
        logged = client.xlen(keys.DECISIONS)
        retried = api.post("/v1/decisions", json={"user_ids": users, **params})
        assert client.xlen(keys.DECISIONS) == logged  # nothing decided again
    finally:
        client.close()
    decisions = batch.json()["decisions"]
    assert retried.json()["decisions"] == decisions
    assert decisions[0] == single.json()
    assert [d["user_id"] for d in decisions] == users
    assert {d["campaign_id"] for d in decisions} == {"summer"}
    with TestClient(create_app(served_world.settings())) as other_process:
        again = other_process.get(f"/v1/users/{users[1]}/decision", params=params).json()
        offer = other_process.get(f"/v1/users/{users[1]}/blocks/offer",
                                  params={**params, "format": "json"}).json()
        shown = other_process.get(f"/v1/users/{users[1]}/blocks/recommendations",
                                  params={**params, "format": "json"}).json()
    assert again == decisions[1]
    assert offer["decision_id"] == shown["decision_id"] == decisions[1]["decision_id"]
    assert offer["offer"] == (decisions[1]["offers"][0] if decisions[1]["offers"] else None)
    assert shown["items"] == decisions[1]["items"]


def test_a_retried_batch_unpacks_no_features(api: TestClient, served_world: ServedWorld,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    users = served_world.users[20:24]
    body = {"user_ids": users, "campaign_id": "retried"}
    first = api.post("/v1/decisions", json=body)
    unpacked: list[str] = []

    def counting(blob: bytes, user_id: str, meta: VersionMeta) -> UserState:
        unpacked.append(user_id)
        return unpack(blob, user_id, meta)

    monkeypatch.setattr(redis_store, "unpack", counting)
    retried = api.post("/v1/decisions", json=body)
    assert retried.json() == first.json()
    assert unpacked == []  # every answer was remembered: no user's features were needed
    api.post("/v1/decisions", json={**body, "user_ids": [*users, served_world.users[24]]})
    assert unpacked == [served_world.users[24]]


def test_a_user_asked_twice_in_a_campaign_batch_is_decided_once(
        api: TestClient, served_world: ServedWorld) -> None:
    user, other = served_world.users[25:27]
    client = redis.Redis.from_url(served_world.redis_url)
    try:
        logged = client.xlen(keys.DECISIONS)
        response = api.post("/v1/decisions", json={"user_ids": [user, other, user, user],
                                                   "campaign_id": "twice"})
        assert client.xlen(keys.DECISIONS) == logged + 2  # one entry a user
    finally:
        client.close()
    decisions = response.json()["decisions"]
    assert [d["user_id"] for d in decisions] == [user, other, user, user]
    assert decisions[0] == decisions[2] == decisions[3] != decisions[1]


def test_without_a_campaign_every_call_decides(api: TestClient,
                                               served_world: ServedWorld) -> None:
    users = served_world.users[14:16]
    first = api.post("/v1/decisions", json={"user_ids": users}).json()["decisions"]
    second = api.post("/v1/decisions", json={"user_ids": users}).json()["decisions"]
    assert {d["decision_id"] for d in first}.isdisjoint(d["decision_id"] for d in second)
    single = api.get(f"/v1/users/{users[0]}/decision")
    assert single.headers.get("Cache-Control") == "no-store" and "ETag" not in single.headers


def test_a_campaign_decision_is_forgotten_after_its_time(api: TestClient,
                                                         served_world: ServedWorld) -> None:
    user = served_world.users[16]
    url = f"/v1/users/{user}/decision"
    first = api.get(url, params={"campaign_id": "flash"}).json()
    assert api.get(url, params={"campaign_id": "flash"}).json() == first
    client = redis.Redis.from_url(served_world.redis_url)
    try:  # its time passes: the stored expiry set in the past
        key = keys.campaign_decision(user, "flash")
        stored = client.hget(key, "decision")
        assert isinstance(stored, bytes)
        client.hset(key, "decision", b"1:" + stored.partition(b":")[2])
        later = api.get(url, params={"campaign_id": "flash"}).json()
        assert later["decision_id"] != first["decision_id"]
        assert later["source"] == first["source"] == "model"  # decided from their features
        assert api.get(url, params={"campaign_id": "flash"}).json() == later
        assert 0 < client.ttl(key) <= served_world.settings().block_ttl_s
    finally:
        client.close()


def test_of_two_first_calls_racing_only_the_decision_remembered_is_logged(
        served_world: ServedWorld) -> None:
    """The first call reads before the second stores its decision: both answer the second's,
    and the first's own decision, which nobody receives, stays out of the log."""
    services = Services.build(served_world.settings())
    client = redis.Redis.from_url(served_world.redis_url)
    request = [DecisionRequest(served_world.users[27], campaign_id="race")]
    first, second = services.campaigns.plan(request), services.campaigns.plan(request)

    def finish(plan: Plan[list[Answer]], outcome: Outcome) -> list[Answer]:
        while True:
            try:
                step = resume(plan, outcome)
            except StopIteration as done:
                answers: list[Answer] = done.value
                return answers
            try:
                outcome = execute(client, step)
            except redis.RedisError as error:  # a script not loaded yet: thrown into the plan
                outcome = error

    try:
        read: Outcome = None
        while True:  # the first call up to its read: nothing remembered yet
            step = resume(first, read)
            read = execute(client, step)
            if any(command[0] == "HGETALL" for command in step.commands):
                break
        logged = client.xlen(keys.DECISIONS)
        won = finish(second, None)
        lost = finish(first, read)
        assert client.xlen(keys.DECISIONS) == logged + 1
    finally:
        client.close()
    assert lost[0].body == won[0].body
    assert won[0].decided is not None and lost[0].decided is None


def test_a_failure_to_remember_still_answers(served_world: ServedWorld,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis fails the store after the read: the decision is answered, only not remembered
    (the script's error is the server's own)."""
    monkeypatch.setattr(campaigns, "_KEEP", LuaScript("return redis.error_reply('ERR injected')"))
    user = served_world.users[18]
    with TestClient(create_app(served_world.settings())) as api:
        single = api.get(f"/v1/users/{user}/decision", params={"campaign_id": "failing"})
        batch = api.post("/v1/decisions", json={"user_ids": [user], "campaign_id": "failing"})
        block = api.get(f"/v1/users/{user}/blocks/offer", params={"campaign_id": "failing"})
    assert single.status_code == batch.status_code == block.status_code == 200
    assert single.headers["Cache-Control"] == block.headers["Cache-Control"] == "no-store"
    assert not single.json()["degraded"]
    assert batch.json()["decisions"][0]["decision_id"] != single.json()["decision_id"]


@pytest.mark.parametrize("header", ['W/{tag}', '"other", {tag}', "*"])
@pytest.mark.parametrize("what", ["blocks/offer", "decision"])
def test_if_none_match_is_compared_as_http_says(api: TestClient, served_world: ServedWorld,
                                                header: str, what: str) -> None:
    url = f"/v1/users/{served_world.users[17]}/{what}"
    first = api.get(url, params={"campaign_id": "etags"})
    again = api.get(url, params={"campaign_id": "etags"},
                    headers={"If-None-Match": header.format(tag=first.headers["ETag"])})
    assert again.status_code == 304
    other = api.get(url, params={"campaign_id": "etags"}, headers={"If-None-Match": '"x"'})
    assert other.status_code == 200
