"""The decision endpoints through HTTP, against a trained and published world."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import polars as pl
import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from decisions import keys
from decisions.outcome import DecisionRequest
from features.contract.offers import offers_file, read_offers
from tests.api.conftest import ServedWorld


def test_a_known_user_gets_a_whole_decision(api: TestClient, served_world: ServedWorld) -> None:
    user = served_world.users[0]
    response = api.get(f"/v1/users/{user}/decision", params={"explain": "true"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user_id"] == user and body["source"] == "model" and not body["degraded"]
    assert body["lifecycle_stage"] in {"new", "active", "loyal", "at_risk", "dormant", "churned"}
    assert len(body["channels"]) == 6
    assert body["model_version"] and body["features_version"] and body["catalog_version"]
    assert body["contact_budget"]["window_days"] >= 1
    assert set(body["explanation"]) == {"removed", "arbitration", "features", "contacts"}
    for offer in body["offers"]:
        assert offer["expected_value"] > 0 and 0 < offer["propensity"] <= 1


def test_send_at_is_the_next_instant_at_the_send_hour(api: TestClient,
                                                      served_world: ServedWorld) -> None:
    """On every channel that reaches the user, allowed now or held back by a cap, `send_at`
    is the next UTC instant at `send_hour_local` in the user's zone (or the request's moment
    inside that hour); messages that interrupt never get a quiet hour (21-8 by default)."""
    users = pl.read_parquet(served_world.directory / "users.parquet")
    zones = dict(zip(users["user_id"], users["timezone"], strict=True))
    reached = unreached = 0
    for user in served_world.users[:40]:
        asked = datetime.now(UTC)
        body = api.get(f"/v1/users/{user}/decision").json()
        zone = ZoneInfo(zones[user] or "UTC")
        for channel in body["channels"]:
            hour = channel["send_hour_local"]
            assert 0 <= hour < 24
            if channel["channel"] in {"email", "push", "sms", "whatsapp"}:
                assert not (hour >= 21 or hour < 8), channel
            if channel["send_at"] is None:
                assert not channel["allowed"]
                unreached += 1
                continue
            reached += 1
            moment = datetime.fromisoformat(channel["send_at"])
            assert moment.astimezone(zone).hour == hour, channel
            assert moment >= asked - timedelta(seconds=5)
            assert moment - asked < timedelta(days=8)
    assert reached and unreached


def test_offers_chosen_are_always_eligible(api: TestClient, served_world: ServedWorld) -> None:
    found = offers_file(served_world.directory)
    assert found is not None
    catalog = {offer.offer_id: offer for offer in read_offers(found)[0]}
    chosen = 0
    for user in served_world.users[:60]:
        body = api.get(f"/v1/users/{user}/decision",
                       params={"journey": "cart_abandoned", "explain": "true",
                               "n_offers": 5}).json()
        removed = body["explanation"]["removed"]
        for offer in body["offers"]:
            chosen += 1
            assert offer["offer_id"] not in removed
            definition = catalog[offer["offer_id"]]
            assert not definition.journeys or "cart_abandoned" in definition.journeys
            assert (not definition.eligibility.lifecycle_stages
                    or body["lifecycle_stage"] in definition.eligibility.lifecycle_stages)
            assert not body["holdout"] or offer["kind"] == "content"
    assert chosen > 0


def test_an_unknown_user_is_answered_from_priors(api: TestClient,
                                                served_world: ServedWorld) -> None:
    body = api.get("/v1/users/never-seen/decision").json()
    other = api.get("/v1/users/also-never-seen/decision").json()
    assert body["source"] == "global" and len(body["categories"]) == 5
    assert body["categories"] == other["categories"]  # the same priors for everyone unknown
    promoted = api.get("/v1/models").json()["serving"]
    shares = orjson.loads((served_world.models / promoted / "category_priors.json")
                          .read_bytes())["global"]  # every purchase line counted
    popular = sorted(shares, key=lambda category: (-shares[category], category))
    assert body["categories"] == popular[:5]  # the most bought over all users
    rows = orjson.loads((served_world.models / promoted / "brand_popularity.json").read_bytes())
    brands = {row["key"]: row for row in rows}
    shares = [brands[brand]["popularity"] * brands[brand]["category_popularity"]
              for brand in body["brands"]]
    assert body["brands"] and shares == sorted(shares, reverse=True)  # the most bought
    assert {brands[brand]["category"] for brand in body["brands"]} <= set(popular[:3])
    assert all(c["channel"] in {"in_app", "web"} for c in body["channels"] if c["allowed"])


@pytest.mark.parametrize(("params", "location"), [
    ({"n_offers": 999}, "query.n_offers"),
    ({"journey": "bogus"}, "query.journey"),
    ({"channels": "email,pigeon"}, "query.channels"),
])
def test_bad_parameters_say_what_to_fix(api: TestClient, params: dict[str, object],
                                        location: str) -> None:
    response = api.get("/v1/users/u1/decision", params=params)
    assert response.status_code == 422
    assert any(problem["location"].startswith(location)
               for problem in response.json()["problems"])


def test_channels_restrict_the_answer(api: TestClient, served_world: ServedWorld) -> None:
    body = api.get(f"/v1/users/{served_world.users[1]}/decision",
                   params={"channels": "email,push"}).json()
    assert {c["channel"] for c in body["channels"]} == {"email", "push"}


def test_the_uninstall_journey_reaches_no_one_through_the_app(
        api: TestClient, served_world: ServedWorld) -> None:
    def reached(user: str, **params: str) -> set[str]:
        body = api.get(f"/v1/users/{user}/decision", params=params).json()
        return {c["channel"] for c in body["channels"] if c["send_at"] is not None}
    app_users = [user for user in served_world.users[:40] if "push" in reached(user)]
    assert app_users  # users the app reaches, to lose it
    for user in app_users[:5]:
        before = reached(user)
        assert reached(user, journey="uninstall") == before - {"push", "in_app"}


def test_a_batch_answers_every_user(api: TestClient, served_world: ServedWorld) -> None:
    users = [*served_world.users[:5], "never-seen"]
    response = api.post("/v1/decisions", json={"user_ids": users, "campaign_id": "spring"})
    assert response.status_code == 200, response.text
    decisions = response.json()["decisions"]
    assert [d["user_id"] for d in decisions] == users
    assert decisions[-1]["source"] == "global"
    assert {d["campaign_id"] for d in decisions} == {"spring"}


def test_a_batch_logs_each_decision_and_counts_each_offer_chosen(
        api: TestClient, served_world: ServedWorld) -> None:
    client = redis.Redis.from_url(served_world.redis_url)

    def chosen() -> Counter[str]:
        return Counter({offer["offer_id"]: offer["budget_status"]["chosen"]
                        for offer in api.get("/v1/offers").json()["offers"]})

    users = [*served_world.users[40:60], served_world.users[40], "never-seen"]
    before, logged = chosen(), client.xlen(keys.DECISIONS)
    decisions = api.post("/v1/decisions", json={"user_ids": users}).json()["decisions"]
    assert chosen() - before == Counter(
        offer["offer_id"] for decision in decisions for offer in decision["offers"])
    assert sum(chosen().values()) > sum(before.values())
    assert client.xlen(keys.DECISIONS) == logged + len(users)
    for decision in decisions:
        summary: dict[bytes, bytes] = client.hgetall(  # type: ignore[assignment]
            keys.decision(decision["decision_id"]))
        assert summary[b"user_id"].decode() == decision["user_id"]
        assert orjson.loads(summary[b"offers"]) == [o["offer_id"] for o in decision["offers"]]


def test_a_batch_decides_each_user_as_a_single_decision_would(
        served_world: ServedWorld) -> None:
    """A batch decides stage by stage over all its users (decisions/engine.py): each answer
    is still the one the user gets alone, at the same moment (deciding counts nothing that
    a later decision reads: what was shown is counted by feedback)."""
    users = served_world.users
    requests = [DecisionRequest(users[0]), DecisionRequest(users[1], journey="cart_abandoned"),
                DecisionRequest(users[2], channels=("email", "sms"), explain=True),
                DecisionRequest("never-seen", n_offers=1, n_categories=2),
                DecisionRequest(users[3], journey="win_back", explain=True, n_items=0),
                DecisionRequest(users[0], campaign_id="spring", channels=("in_app",)),
                *(DecisionRequest(user) for user in users[4:40])]
    now = datetime.now(UTC)
    with TestClient(create_app(served_world.settings(exploration="none"))) as app:
        engine = app.app.state.services.engine  # type: ignore[attr-defined]
        alone = [engine.decide(request, now) for request in requests]
        together = engine.decide_many(requests, now)
    assert sum(bool(decision.offers) for decision in together) >= 20
    assert [replace(d, decision_id="") for d in together] == [
        replace(d, decision_id="") for d in alone]


def test_a_batch_over_the_limit_is_refused(served_world: ServedWorld) -> None:
    with TestClient(create_app(served_world.settings(max_batch_users=2))) as client:
        response = client.post("/v1/decisions", json={"user_ids": ["a", "b", "c"]})
        at_most = client.post("/v1/decisions", json={"user_ids": ["a", "b"]})
    assert response.status_code == 413 and "NBO_MAX_BATCH_USERS" in response.json()["detail"]
    assert at_most.status_code == 200 and len(at_most.json()["decisions"]) == 2


def test_holdout_users_get_no_incentive(served_world: ServedWorld) -> None:
    with TestClient(create_app(served_world.settings(holdout_share=1.0))) as client:
        for user in served_world.users[:30]:
            body = client.get(f"/v1/users/{user}/decision").json()
            assert body["holdout"] and body["holdout_group"] == "global"
            assert all(offer["kind"] == "content" for offer in body["offers"])


def test_an_offer_for_prospects_is_not_made_to_a_buyer(api: TestClient) -> None:
    """The `buyer` and `prospect` segments: a user with a purchase is a buyer, one never
    seen a prospect."""
    offer = {"offer_id": "prospects-only", "kind": "content", "value": 0, "cost": 0,
             "eligibility": {"segments": ["prospect"]}}
    assert api.put("/v1/offers/prospects-only", json=offer).status_code == 200
    purchase = {"user_id": "segment-buyer", "event_type": "purchase", "category": "coffee",
                "price": 9.0, "ts": datetime.now(UTC).isoformat(), "event_id": "segment-1"}
    try:
        assert api.post("/v1/events", json={"events": [purchase]}).json()["applied"] == 1
        removed = {user: api.get(f"/v1/users/{user}/decision", params={
            "explain": "true"}).json()["explanation"]["removed"].get("prospects-only", [])
            for user in ("segment-buyer", "segment-never-seen")}
    finally:
        api.delete("/v1/offers/prospects-only")
    assert "segment" in removed["segment-buyer"]
    assert "segment" not in removed["segment-never-seen"]


def test_items_follow_the_ranked_categories(api: TestClient, served_world: ServedWorld) -> None:
    items = pl.read_parquet(served_world.directory / "items.parquet")
    category_of = dict(zip(items["item_id"], items["category"], strict=True))
    matched = 0
    for user in served_world.users[:20]:
        body = api.get(f"/v1/users/{user}/decision", params={"n_items": 8}).json()
        assert len(body["items"]) == 8 and len(set(body["items"])) == 8
        matched += category_of[body["items"][0]] == body["categories"][0]
    assert matched >= 15  # the best category's items lead the list


def test_category_hours_are_given_for_the_categories(api: TestClient,
                                                      served_world: ServedWorld) -> None:
    by_category: dict[str, set[int]] = {}
    per_user: list[set[int]] = []
    for user in served_world.users[:40]:
        body = api.get(f"/v1/users/{user}/decision").json()
        hours = body["category_hours"]
        assert list(hours) == body["categories"] and all(0 <= h <= 23 for h in hours.values())
        for category, hour in hours.items():
            by_category.setdefault(category, set()).add(hour)
        per_user.append(set(hours.values()))
    assert max(len(hours) for hours in by_category.values()) > 1  # each user's own hours
    assert any(len(hours) > 1 for hours in per_user)  # categories with hours of their own


def test_price_bands_are_given_for_the_categories(api: TestClient,
                                                  served_world: ServedWorld) -> None:
    seen: set[str] = set()
    for user in served_world.users[:40]:
        body = api.get(f"/v1/users/{user}/decision").json()
        bands = body["category_price_bands"]
        assert set(bands) <= set(body["categories"]) and set(bands.values()) <= {
            "low", "mid", "high"}
        if body["price_band"] is not None:  # a band per category, the user's or their own
            assert list(bands) == body["categories"]
        seen |= set(bands.values())
    assert len(seen) > 1


def test_similar_items(api: TestClient, served_world: ServedWorld) -> None:
    item = pl.read_parquet(served_world.directory / "items.parquet")["item_id"][0]
    body = api.get(f"/v1/items/{item}/similar", params={"n": 5}).json()
    assert body["item_id"] == item and body["model_version"]
    similar = [entry["item_id"] for entry in body["similar"]]
    assert 0 < len(similar) <= 5 and item not in similar
    scores = [entry["score"] for entry in body["similar"]]
    assert scores == sorted(scores, reverse=True)
    assert api.get("/v1/items/no-such-item/similar").status_code == 404
    slashed = api.get("/v1/items/sku%2F1/similar")  # ids may hold a slash, as the data may
    assert slashed.status_code == 404 and "item 'sku/1' is not known" in slashed.text
    assert api.get(f"/v1/items/{item}/similar", params={"n": 0}).status_code == 422
    assert api.get(f"/v1/items/{item}/similar", params={"n": 21}).status_code == 422  # kept 20
    unknown = api.get(f"/v1/items/{item}/similar", params={"count": 3})
    assert unknown.status_code == 422 and "count" in unknown.text


def test_the_log_keeps_what_off_policy_evaluation_needs(api: TestClient,
                                                        served_world: ServedWorld) -> None:
    """Each logged decision keeps the candidates exploration arranged (best first, with
    their expected values), how it arranged them, and the propensity of each pick."""
    client = redis.Redis.from_url(served_world.redis_url)
    try:
        checked = 0
        for user in served_world.users[:30]:
            body = api.get(f"/v1/users/{user}/decision",
                           params={"n_offers": 2, "explain": "true"}).json()
            if not body["offers"]:
                continue
            latest: list[tuple[bytes, dict[bytes, bytes]]] = client.xrevrange(  # type: ignore[assignment]
                keys.DECISIONS, count=1)
            entry = orjson.loads(latest[0][1][b"d"])
            assert entry["decision_id"] == body["decision_id"]
            candidates = dict(entry["candidates"])
            values = [value for _, value in entry["candidates"]]
            assert values == sorted(values, reverse=True) and min(values) >= 0
            assert entry["eligible"] >= len(candidates) >= len(body["offers"])
            assert len(candidates) <= 2 + entry["exploration"]["top_k"] - 1  # all it could show
            for offer in body["offers"]:
                assert candidates[offer["offer_id"]] == pytest.approx(offer["expected_value"],
                                                                      abs=1e-6)
            assert [o["propensity"] for o in entry["offers"]] == [
                o["propensity"] for o in body["offers"]]
            assert entry["exploration"]["method"] == "epsilon_greedy"
            # the channel the offers were scored for, even when none has room to send now
            assert entry["offer_channel"] == body["explanation"]["arbitration"]["channel"]
            checked += 1
    finally:
        client.close()
    assert checked >= 10


def test_a_user_id_with_slashes_is_decided(api: TestClient) -> None:
    user = "tenant-7/user/42"
    event = {"user_id": user, "ts": datetime.now(UTC).isoformat(), "event_type": "view",
             "category": "coffee"}
    assert api.post("/v1/events", json={"events": [event]}).json()["applied"] == 1
    decision = api.get(f"/v1/users/{user}/decision")
    assert decision.status_code == 200 and decision.json()["user_id"] == user
    assert decision.json()["source"] == "model"
    block = api.get(f"/v1/users/{user}/blocks/offer", params={"format": "json"})
    assert block.status_code == 200 and block.json()["user_id"] == user


def test_an_id_is_trimmed_as_the_events_contract_trims_it(api: TestClient) -> None:
    """An event's padded user id is trimmed: a decision for the same padded id read another,
    unknown user, and a blank id was decided and logged."""
    user = "padded-user"
    event = {"user_id": f" {user} ", "ts": datetime.now(UTC).isoformat(),
             "event_type": "view", "category": "coffee"}
    assert api.post("/v1/events", json={"events": [event]}).json()["applied"] == 1
    for padded in (f"{user}%20", f"%20{user}", f"%09{user}"):
        decision = api.get(f"/v1/users/{padded}/decision")
        assert decision.status_code == 200, decision.text
        assert (decision.json()["user_id"], decision.json()["source"]) == (user, "model")
    block = api.get(f"/v1/users/{user}%20/blocks/offer", params={"format": "json"})
    assert block.status_code == 200 and block.json()["user_id"] == user
    batch = api.post("/v1/decisions", json={"user_ids": [f" {user}"]}).json()["decisions"]
    assert batch[0]["user_id"] == user
    for blank in ("%20", "%20%20"):
        assert api.get(f"/v1/users/{blank}/decision").status_code == 422
    assert api.post("/v1/decisions", json={"user_ids": [" "]}).status_code == 422


def test_a_user_without_history_is_answered_from_their_countrys_prior(
        api: TestClient, served_world: ServedWorld) -> None:
    registry_dir = served_world.models / api.get("/v1/models").json()["serving"]
    priors = orjson.loads((registry_dir / "category_priors.json").read_bytes())["country"]
    country = sorted(priors)[0]
    expected = sorted(priors[country], key=lambda c: (-priors[country][c], c))[:4]
    visitor = api.get("/v1/users/visitor-1/decision",
                      params={"country": country, "n_categories": 4}).json()
    assert visitor["source"] == "country" and visitor["categories"] == expected
    anywhere = api.get("/v1/users/visitor-1/decision", params={"n_categories": 4}).json()
    assert anywhere["source"] == "global"
    assert api.get("/v1/users/visitor-1/decision",
                   params={"country": "france"}).status_code == 422
    known = api.get(f"/v1/users/{served_world.users[0]}/decision",
                    params={"country": country}).json()
    assert known["source"] == "model"  # their own history answers, whatever the country


def test_explain_names_what_made_the_first_offers_case(api: TestClient,
                                                      served_world: ServedWorld) -> None:
    explained = 0
    for user in served_world.users[:20]:
        body = api.get(f"/v1/users/{user}/decision", params={"explain": "true"}).json()
        if not body["offers"]:
            continue
        found = body["explanation"]["arbitration"]["drivers"]
        assert found["offer_id"] == body["offers"][0]["offer_id"]
        assert found["p_convert"] and found["uplift"]  # the offer's own columns differ
        assert {"feature", "value", "contribution"} == set(found["uplift"][0])
        sizes = [abs(d["contribution"]) for d in found["p_convert"]]
        assert sizes == sorted(sizes, reverse=True)
        explained += 1
    assert explained >= 5


def test_returns_outweighing_purchases_leave_the_default_order_value(api: TestClient) -> None:
    """A net spend below zero is no order value: with it, an offer that lowers conversion
    would have scored as worth its cost."""
    now = datetime.now(UTC) - timedelta(minutes=1)
    lines = [(1, 10.0), (-1, 60.0)]  # bought 10, returned 60
    events = [{"user_id": "returner", "event_type": "purchase", "ts": now.isoformat(),
               "event_id": f"returner-{i}", "item_id": "i1", "category": "coffee",
               "quantity": quantity, "price": price}
              for i, (quantity, price) in enumerate(lines)]
    assert api.post("/v1/events", json={"events": events}).json()["applied"] == 2
    body = api.get("/v1/users/returner/decision", params={"explain": "true"}).json()
    terms = body["explanation"]["arbitration"]
    assert terms["order_value"] == 40.0  # NBO_DEFAULT_ORDER_VALUE


def test_the_order_value_is_the_average_basket_not_the_average_line(api: TestClient) -> None:
    """An offer's value is what a converted order brings: with two lines a basket, the
    average line halved the value of every offer's uplift (the cost stayed whole)."""
    start = datetime.now(UTC) - timedelta(days=8)
    events = [{"user_id": "basket-buyer", "event_type": "purchase",
               "ts": (start + timedelta(days=2 * basket, minutes=line)).isoformat(),
               "event_id": f"basket-{basket}-{line}", "item_id": f"i{line}",
               "category": "coffee", "price": price}
              for basket in range(4) for line, price in enumerate((10.0, 6.0))]
    assert api.post("/v1/events", json={"events": events}).json()["applied"] == 8
    body = api.get("/v1/users/basket-buyer/decision", params={"explain": "true"}).json()
    assert body["explanation"]["features"]["purchases"] == 8
    assert body["explanation"]["arbitration"]["order_value"] == 16.0


def test_a_user_who_refused_in_app_is_not_reached_there(api: TestClient,
                                                        served_world: ServedWorld) -> None:
    """In-app needs no consent, but an explicit no in the users table is kept (the channel
    model's training already kept it; decisions chose in-app for such users)."""
    users = pl.read_parquet(served_world.directory / "users.parquet")
    refused = users.filter(~pl.col("consent_in_app") & pl.col("consent_web"))["user_id"]
    assert len(refused) > 0
    for user in refused.head(10):
        alone = api.get(f"/v1/users/{user}/decision", params={"channels": "in_app"}).json()
        assert alone["channel"] is None and not alone["offers"]
        assert [(c["allowed"], c["send_at"]) for c in alone["channels"]] == [(False, None)]
        both = api.get(f"/v1/users/{user}/decision", params={"channels": "in_app,web"}).json()
        reached = {c["channel"]: c["send_at"] is not None for c in both["channels"]}
        assert reached == {"in_app": False, "web": True} and both["channel"] != "in_app"


def test_exploration_arranges_all_it_may_show_however_many_offers_are_asked(
        api: TestClient, served_world: ServedWorld) -> None:
    """50 offers asked, top k 5: 54 candidates to arrange. A cap of 50 on what the log
    keeps also cut what exploration could show (the last picks chose among 4, 3, 2, 1)."""
    original = api.get("/v1/offers/coffee-guide").json()
    template = {key: value for key, value in original.items() if key != "budget_status"}
    copies = [f"guide-copy-{n:02d}" for n in range(60)]
    for offer_id in copies:
        put = api.put(f"/v1/offers/{offer_id}", json={**template, "offer_id": offer_id,
                                                      "categories": [], "max_per_user": None})
        assert put.status_code == 200, put.text
    client = redis.Redis.from_url(served_world.redis_url)
    try:
        body = api.get(f"/v1/users/{served_world.users[0]}/decision",
                       params={"n_offers": 50}).json()
        latest: list[tuple[bytes, dict[bytes, bytes]]] = client.xrevrange(  # type: ignore[assignment]
            keys.DECISIONS, count=1)
        entry = orjson.loads(latest[0][1][b"d"])
        assert entry["decision_id"] == body["decision_id"] and len(body["offers"]) == 50
        assert len(entry["candidates"]) == 50 + entry["exploration"]["top_k"] - 1
    finally:
        for offer_id in copies:
            api.delete(f"/v1/offers/{offer_id}")
        client.close()
