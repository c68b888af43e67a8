"""Properties of the business rules, through HTTP against the served world: whatever the
contact history, budgets spent, user or campaign, no answer breaks a rule."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
import redis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app import create_app
from decisions import keys
from decisions.catalog import OfferCatalog
from features.contract.offers import offers_file, read_offers
from features.contract.schema import Journey
from models.offer_response import CHANNELS
from tests.api.conftest import ServedWorld

PROPERTY = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
DAILY_CAP, SMS_DAILY_CAP = 3, 1
JOURNEYS = st.sampled_from([None, *(journey.value for journey in Journey)])


def _consenting(served_world: ServedWorld, channel: str) -> list[str]:
    """Users other tests leave alone (the second half) who consent to `channel`."""
    users = pl.read_parquet(served_world.directory / "users.parquet").sort("user_id")
    half = users.tail(len(users) // 2)
    return half.filter(pl.col(f"consent_{channel}"))["user_id"].to_list()


def _sent(user: str, channel: str) -> dict[str, object]:
    return {"user_id": user, "event_type": "message_sent", "channel": channel,
            "ts": (datetime.now(UTC) - timedelta(seconds=1)).isoformat(),
            "event_id": uuid.uuid4().hex}


@pytest.fixture
def capped(served_world: ServedWorld) -> Iterator[TestClient]:
    caps = {"*": [(1, DAILY_CAP)], "sms": [(1, SMS_DAILY_CAP)]}
    with TestClient(create_app(served_world.settings(contact_caps=caps))) as client:
        yield client


def test_no_channel_is_allowed_above_a_cap(capped: TestClient,
                                           served_world: ServedWorld) -> None:
    users = _consenting(served_world, "email")
    sent_today: Counter[tuple[str, str]] = Counter()  # the world ends at midnight: none before
    seen: set[str] = set()

    @PROPERTY
    @given(user=st.sampled_from(users),
           sends=st.lists(st.sampled_from(["email", "sms", "push"]), max_size=3))
    def check(user: str, sends: list[str]) -> None:
        if sends:
            response = capped.post("/v1/events", json={"events": [_sent(user, c) for c in sends]})
            assert response.json()["applied"] == len(sends), response.text
            sent_today.update((user, channel) for channel in sends)
        total = sum(n for (who, _), n in sent_today.items() if who == user)
        body = capped.get(f"/v1/users/{user}/decision").json()
        allowed = {c["channel"] for c in body["channels"] if c["allowed"]}
        if total >= DAILY_CAP:
            assert not allowed
            assert datetime.fromisoformat(body["contact_budget"]["next_allowed_at"]) > (
                datetime.now(UTC))
        if sent_today[user, "sms"] >= SMS_DAILY_CAP:
            assert "sms" not in allowed
        seen.add("capped" if total >= DAILY_CAP else "room left" if allowed else "other caps")

    check()
    assert {"capped", "room left"} <= seen  # both sides of the cap were reached


def test_no_offer_is_chosen_beyond_its_budget(api: TestClient,
                                              served_world: ServedWorld) -> None:
    found = offers_file(served_world.directory)
    assert found is not None
    budgeted = [o for o in read_offers(found)[0] if o.budget is not None and o.cost > 0]
    client = redis.Redis.from_url(served_world.redis_url)
    catalog = OfferCatalog(client)

    @PROPERTY
    @given(spent=st.lists(st.floats(0.0, 1.05), min_size=len(budgeted),
                          max_size=len(budgeted)),
           users=st.lists(st.sampled_from(served_world.users), min_size=1, max_size=4),
           journey=JOURNEYS)
    def check(spent: list[float], users: list[str], journey: str | None) -> None:
        client.delete(keys.SPENT)
        for offer, share in zip(budgeted, spent, strict=True):
            catalog.record_spend(offer.offer_id, share * (offer.budget or 0.0))
        unaffordable = {o.offer_id for o, share in zip(budgeted, spent, strict=True)
                        if o.cost > (o.budget or 0.0) * (1 - share) + 1e-9}
        body: dict[str, object] = {"user_ids": users, "n_offers": 50, "explain": True}
        if journey:
            body["journey"] = journey
        response = api.post("/v1/decisions", json=body)
        assert response.status_code == 200, response.text
        for decision in response.json()["decisions"]:
            assert not unaffordable & {offer["offer_id"] for offer in decision["offers"]}
            removed = decision["explanation"]["removed"]
            assert all("budget" in removed[offer_id] for offer_id in unaffordable)

    try:
        check()
    finally:
        client.delete(keys.SPENT)
        client.close()


def test_an_offer_goes_out_only_on_a_channel_it_allows(api: TestClient,
                                                      served_world: ServedWorld) -> None:
    """Copies of a content offer, each allowed on one channel: a decision passes only the
    one for its own channel (the one its offers are scored for)."""
    original = api.get("/v1/offers/coffee-guide").json()
    template = {key: value for key, value in original.items() if key != "budget_status"}
    only = {f"only-{channel}": channel for channel in CHANNELS}
    for offer_id, channel in only.items():
        put = api.put(f"/v1/offers/{offer_id}", json={
            **template, "offer_id": offer_id, "categories": [], "channels": [channel],
            "max_per_user": None})
        assert put.status_code == 200, put.text
    decided_on: Counter[str] = Counter()

    @PROPERTY
    @given(user=st.sampled_from(served_world.users),
           allowed=st.lists(st.sampled_from(CHANNELS), min_size=1, unique=True))
    def check(user: str, allowed: list[str]) -> None:
        body = api.get(f"/v1/users/{user}/decision", params={
            "channels": ",".join(allowed), "n_offers": 50, "explain": "true"}).json()
        reaching = {c["channel"] for c in body["channels"] if c["send_at"] is not None}
        # the decision's channel: the best allowed, else the best reaching the user
        channel = body["channel"] or next(
            (c["channel"] for c in body["channels"] if c["channel"] in reaching),
            body["channels"][0]["channel"] if body["channels"] else None)
        removed = body["explanation"]["removed"]
        for offer_id, only_on in only.items():
            blocked = "channel" in removed.get(offer_id, [])
            assert blocked == (only_on != channel or channel not in reaching), (offer_id, body)
        assert {o["offer_id"] for o in body["offers"]} & set(only) <= {f"only-{channel}"}
        decided_on[str(channel)] += 1

    try:
        check()
    finally:
        for offer_id in only:
            api.delete(f"/v1/offers/{offer_id}")
    assert len(decided_on) >= 3, decided_on  # decisions on several channels were checked


def test_holdout_groups_are_stable_and_get_no_incentive(served_world: ServedWorld) -> None:
    shares = {"holdout_share": 0.3,
              "holdout_journey_shares": {"win_back": 0.5, "cart_abandoned": 1.0}}
    with (TestClient(create_app(served_world.settings(**shares))) as first,
          TestClient(create_app(served_world.settings(**shares))) as restarted):

        @PROPERTY
        @given(user=st.sampled_from(served_world.users) | st.from_regex(
            r"[A-Za-z0-9_@-][A-Za-z0-9_.@-]{0,39}", fullmatch=True), journey=JOURNEYS)
        def check(user: str, journey: str | None) -> None:
            params = {"journey": journey, "n_offers": 20} if journey else {"n_offers": 20}
            body = first.get(f"/v1/users/{user}/decision", params=params).json()
            again = restarted.get(f"/v1/users/{user}/decision", params=params).json()
            assert (body["holdout"], body["holdout_group"]) == (
                again["holdout"], again["holdout_group"])
            if body["holdout"]:
                assert all(offer["kind"] == "content" for offer in body["offers"])

        check()


def test_a_journeys_own_share_holds_out_its_users(served_world: ServedWorld) -> None:
    shares = {"holdout_share": 0.0, "holdout_journey_shares": {"cart_abandoned": 1.0}}
    with TestClient(create_app(served_world.settings(**shares))) as client:
        for user in served_world.users[:10]:
            held = client.get(f"/v1/users/{user}/decision",
                              params={"journey": "cart_abandoned", "n_offers": 20}).json()
            assert held["holdout"] and held["holdout_group"] == "journey:cart_abandoned"
            assert all(offer["kind"] == "content" for offer in held["offers"])
            other = client.get(f"/v1/users/{user}/decision",
                               params={"journey": "win_back"}).json()
            assert not other["holdout"] and other["holdout_group"] is None


def test_one_campaign_always_gets_one_block(api: TestClient,
                                            served_world: ServedWorld) -> None:
    @PROPERTY
    @given(user=st.sampled_from(served_world.users),
           campaign=st.from_regex(r"[a-z0-9-]{1,24}", fullmatch=True),
           block=st.sampled_from(["offer", "recommendations"]))
    def check(user: str, campaign: str, block: str) -> None:
        url = f"/v1/users/{user}/blocks/{block}"
        params = {"campaign_id": campaign, "format": "json"}
        first, second = api.get(url, params=params), api.get(url, params=params)
        assert first.status_code == 200, first.text
        assert first.content == second.content
        assert first.headers["ETag"] == second.headers["ETag"]

    check()


def test_with_every_channel_capped_offers_are_scored_for_one_reaching_the_user(
        capped: TestClient, served_world: ServedWorld) -> None:
    """Allowing a channel the user cannot be reached on changes nothing: the decision is for
    the best channel that reaches them, not the best scored."""
    users = pl.read_parquet(served_world.directory / "users.parquet").sort("user_id")
    half = users.tail(len(users) // 2)
    user = half.filter(pl.col("consent_email") & ~pl.col("consent_whatsapp")
                       & ~pl.col("consent_sms"))["user_id"][0]
    sent = capped.post("/v1/events", json={"events": [_sent(user, "email")
                                                      for _ in range(DAILY_CAP)]})
    assert sent.status_code == 200, sent.text

    def removed(channels: str) -> dict[str, list[str]]:
        body = capped.get(f"/v1/users/{user}/decision",
                          params={"channels": channels, "explain": "true"}).json()
        assert not any(c["allowed"] for c in body["channels"])  # every channel capped
        found: dict[str, list[str]] = body["explanation"]["removed"]
        return found

    assert removed("email,whatsapp,sms") == removed("email")
