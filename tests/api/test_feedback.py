"""Feedback through HTTP: recorded once per (decision, type, offer); what the user was shown
counts against `max_per_user`, what they redeemed against the budget."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis
from fastapi.testclient import TestClient

from decisions import keys
from decisions.catalog import OfferCatalog
from tests.api.conftest import ServedWorld

ONCE = "audit-once"


@pytest.fixture
def once_per_user(api: TestClient, served_world: ServedWorld) -> Iterator[tuple[str, str]]:
    """(user, offer id): a copy of an offer the user is given, at most once per user, with
    a budget; removed afterwards."""
    for user in served_world.users:
        body = api.get(f"/v1/users/{user}/decision", params={"n_offers": 50}).json()
        chosen = [o["offer_id"] for o in body["offers"] if o["kind"] != "content"]
        if chosen:
            break
    else:
        raise AssertionError("no user of the world is given an incentive")
    original = api.get(f"/v1/offers/{chosen[0]}").json()
    copy = {key: value for key, value in original.items() if key != "budget_status"}
    put = api.put(f"/v1/offers/{ONCE}", json={**copy, "offer_id": ONCE, "max_per_user": 1,
                                              "budget": 1000.0})
    assert put.status_code == 200, put.text
    client = redis.Redis.from_url(served_world.redis_url)
    try:
        yield user, ONCE
    finally:
        api.delete(f"/v1/offers/{ONCE}")
        client.hdel(keys.given(user), ONCE)
        client.hdel(keys.SPENT, ONCE)
        client.close()


def _decided_with(api: TestClient, user: str, offer_id: str) -> dict[str, Any]:
    """A decision for `user` that gives `offer_id` (exploration may leave it out of one)."""
    for _ in range(20):
        body: dict[str, Any] = api.get(f"/v1/users/{user}/decision",
                                       params={"n_offers": 50, "explain": "true"}).json()
        if any(offer["offer_id"] == offer_id for offer in body["offers"]):
            return body
    raise AssertionError(f"{offer_id} was not given to {user} in 20 decisions")


def test_decisions_alone_do_not_use_up_max_per_user(api: TestClient,
                                                    once_per_user: tuple[str, str]) -> None:
    user, offer_id = once_per_user
    for _ in range(3):  # an app asking on every screen: nothing shown is reported
        _decided_with(api, user, offer_id)


def test_an_impression_counts_once_against_max_per_user(
        api: TestClient, once_per_user: tuple[str, str]) -> None:
    user, offer_id = once_per_user
    decision = _decided_with(api, user, offer_id)
    impression = {"decision_id": decision["decision_id"], "type": "impression",
                  "offer_id": offer_id}
    first = api.post("/v1/feedback", json=impression)
    assert first.status_code == 200 and first.json()["duplicate"] is False
    again = api.post("/v1/feedback", json=impression)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    after = api.get(f"/v1/users/{user}/decision",
                    params={"n_offers": 50, "explain": "true"}).json()
    assert offer_id not in {offer["offer_id"] for offer in after["offers"]}
    assert "max_per_user" in after["explanation"]["removed"][offer_id]


def test_a_redemption_spends_the_budget_once(api: TestClient,
                                             once_per_user: tuple[str, str]) -> None:
    user, offer_id = once_per_user
    decision = _decided_with(api, user, offer_id)
    cost = api.get(f"/v1/offers/{offer_id}").json()["cost"]
    redemption = {"decision_id": decision["decision_id"], "type": "redemption",
                  "offer_id": offer_id, "value": 42.0}
    for _ in range(3):  # a client retrying
        assert api.post("/v1/feedback", json=redemption).status_code == 200
    assert api.get(f"/v1/offers/{offer_id}").json()["budget_status"]["spent"] == cost
    click = {"decision_id": decision["decision_id"], "type": "click"}
    assert api.post("/v1/feedback", json=click).json()["duplicate"] is False


def test_a_campaign_block_counts_its_offer_once(api: TestClient, served_world: ServedWorld,
                                                once_per_user: tuple[str, str]) -> None:
    user, offer_id = once_per_user
    for attempt in range(20):  # the campaign's block is the one showing the offer
        campaign = f"spring-{attempt}"
        block = api.get(f"/v1/users/{user}/blocks/offer",
                        params={"campaign_id": campaign, "format": "json"}).json()
        if block["offer"] and block["offer"]["offer_id"] == offer_id:
            break
    else:
        raise AssertionError(f"{offer_id} did not lead {user}'s block in 20 campaigns")
    again = api.get(f"/v1/users/{user}/blocks/offer",
                    params={"campaign_id": campaign, "format": "json"}).json()
    assert again == block  # remembered: fetched again, not sent again
    client = redis.Redis.from_url(served_world.redis_url)
    rendered = OfferCatalog.parse_given(client.hgetall(keys.given(user)), 3600)
    for about_the_offer in (True, False):  # the sender reports the same showing
        report = {"decision_id": block["decision_id"], "type": "impression"}
        reported = api.post("/v1/feedback", json=report | (
            {"offer_id": offer_id} if about_the_offer else {}))
        assert reported.status_code == 200 and reported.json()["duplicate"] is True
    after = api.get(f"/v1/users/{user}/decision",
                    params={"n_offers": 50, "explain": "true"}).json()
    assert "max_per_user" in after["explanation"]["removed"][offer_id]
    try:
        given = OfferCatalog.parse_given(client.hgetall(keys.given(user)), 3600)
        assert given[offer_id] == 1  # shown once, counted once
        assert given == rendered  # nor the decision's other offers, which it did not show
        entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange(  # type: ignore[assignment]
            keys.FEEDBACK)
        impressions = [orjson.loads(fields[b"f"]) for _, fields in entries]
    finally:
        client.close()
    assert [(f["decision_id"], f["type"], f["offer_id"]) for f in impressions
            if f["decision_id"] == block["decision_id"]] == [
        (block["decision_id"], "impression", offer_id)]


def test_a_campaign_block_whose_decision_has_no_summary_still_counts_its_offer(
        api: TestClient, served_world: ServedWorld, once_per_user: tuple[str, str]) -> None:
    """Rendered before its decision's summary is written (or after it expired): the showing
    counts all the same, only without a feedback entry to join."""
    user, offer_id = once_per_user
    for attempt in range(20):
        campaign = f"unjoined-{attempt}"
        decision = api.get(f"/v1/users/{user}/decision", params={"campaign_id": campaign}).json()
        if decision["offers"] and decision["offers"][0]["offer_id"] == offer_id:
            break
    else:
        raise AssertionError(f"{offer_id} did not lead {user}'s decision in 20 campaigns")
    client = redis.Redis.from_url(served_world.redis_url)
    try:
        client.delete(keys.decision(decision["decision_id"]))
        block = api.get(f"/v1/users/{user}/blocks/offer", params={"campaign_id": campaign})
        assert block.status_code == 200
        given = OfferCatalog.parse_given(client.hgetall(keys.given(user)), 3600)
    finally:
        client.close()
    assert given.get(offer_id) == 1
