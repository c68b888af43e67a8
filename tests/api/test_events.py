"""Live events, feedback, offers, models and health through HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from features.event import Event
from features.store.base import Applied
from features.store.redis_store import RedisFeatureStore
from nbo.errors import StoreContentionError
from nbo.redis_plan import Plan
from nbo.redis_server import EmbeddedRedis
from nbo.settings import Settings
from tests.api.conftest import ServedWorld

ADMIN, DECIDE = "admin-key-123", "decide-key-456"


def _event(user: str, **fields: object) -> dict[str, object]:
    return {"user_id": user, "ts": datetime.now(UTC).isoformat(), **fields}


def test_good_events_are_applied_next_to_bad_ones(api: TestClient) -> None:
    user = "live-user-1"
    before = api.get(f"/v1/users/{user}/decision?explain=true").json()
    assert before["source"] == "global"
    assert "category_interest" in before["explanation"]["removed"]["coffee-guide"]
    events = [_event(user, event_type="view", category="coffee", event_id="e1"),
              _event(user, event_type="teleport"),
              _event(user, event_type="purchase", category="coffee", price=12.5,
                     event_id="e2"),
              _event(user, event_type="view", category="coffee", event_id="e1")]
    response = api.post("/v1/events", json={"events": events})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["applied"], body["duplicates"], body["rejected"]) == (2, 1, 1)
    rejected = body["results"][1]
    assert rejected["status"] == "rejected" and "event_type" in rejected["problems"][0]
    # what the decision reads of the two applied events, whichever way the models rank them
    decision = api.get(f"/v1/users/{user}/decision?explain=true").json()
    explanation = decision["explanation"]
    assert decision["source"] == "model"
    assert explanation["features"]["purchases"] == 1
    assert explanation["features"]["recent_categories"] == ["coffee"]
    assert explanation["arbitration"]["order_value"] == 12.5
    assert "coffee-guide" not in explanation["removed"]  # coffee is now of interest


def test_journeys_are_about_the_cart_or_the_last_browsed_categories(api: TestClient) -> None:
    user = "live-cart-1"
    events = [_event(user, event_type="add_to_cart", category="pet_food", price=30.0,
                     quantity=1, event_id="c1"),
              _event(user, event_type="add_to_cart", category="coffee", price=12.0,
                     quantity=1, event_id="c2"),
              _event(user, event_type="remove_from_cart", category="coffee", price=12.0,
                     quantity=1, event_id="c3"),
              *(_event(user, event_type="view", category=category, event_id=f"v{n}")
                for n, category in enumerate(("coffee", "skincare")))]
    assert api.post("/v1/events", json={"events": events}).json()["applied"] == 5
    cart = api.get(f"/v1/users/{user}/decision?journey=cart_abandoned&explain=true"
                   "&n_categories=3").json()
    features = cart["explanation"]["features"]
    assert features["cart_categories"] == ["pet_food"] and features["cart_value"] == 30.0
    assert features["cart_partial"] is False
    assert features["recent_categories"] == ["skincare", "coffee", "pet_food"]
    assert cart["categories"][0] == "pet_food"
    removed = cart["explanation"]["removed"]
    for elsewhere in ("voucher-15-beauty", "coffee-guide"):  # browsed, not in the cart
        assert "cart_categories" in removed[elsewhere]
    assert "cart_categories" not in removed.get("cashback-pets", [])
    assert "cart_categories" not in removed.get("cart-save-8", [])  # for any category
    browsing = api.get(f"/v1/users/{user}/decision?journey=product_view&explain=true"
                       "&n_categories=3").json()
    assert browsing["categories"] == ["skincare", "coffee", "pet_food"]  # the last browsed
    assert "cart_categories" not in browsing["explanation"]["removed"].get("coffee-guide", [])


def test_a_cart_whose_lines_may_miss_a_category_restricts_no_category(api: TestClient) -> None:
    """An item of no known category makes the cart partial: its categories are not all
    known, so the cart rule passes offers for other categories (the model weighs them)."""
    user = "live-cart-partial"
    events = [_event(user, event_type="add_to_cart", category="pet_food", price=30.0,
                     event_id="p1"),
              _event(user, event_type="add_to_cart", price=10.0, event_id="p2")]
    assert api.post("/v1/events", json={"events": events}).json()["applied"] == 2
    cart = api.get(f"/v1/users/{user}/decision?journey=cart_abandoned&explain=true").json()
    features = cart["explanation"]["features"]
    assert features["cart_categories"] == ["pet_food"] and features["cart_partial"] is True
    removed = cart["explanation"]["removed"]
    assert all("cart_categories" not in rules for rules in removed.values()), removed


def test_a_category_in_the_cart_is_of_interest_whatever_its_returns(api: TestClient) -> None:
    """A return outweighing the cart's interest in coffee leaves none counted, but coffee is
    still in the cart and among the last browsed: an offer for coffee may be made."""
    user = "live-cart-returner"
    events = [_event(user, event_type="add_to_cart", category="coffee", price=12.0,
                     event_id="r1"),
              _event(user, event_type="purchase", category="coffee", price=12.0,
                     quantity=-1, event_id="r2")]
    assert api.post("/v1/events", json={"events": events}).json()["applied"] == 2
    body = api.get(f"/v1/users/{user}/decision?explain=true").json()
    assert body["explanation"]["features"]["recent_categories"] == ["coffee"]
    assert "category_interest" not in body["explanation"]["removed"].get("coffee-guide", [])


def test_a_request_with_only_bad_events_is_a_422(api: TestClient) -> None:
    response = api.post("/v1/events", json={"events": [{"user_id": "x", "ts": "soon",
                                                         "event_type": "view"}]})
    assert response.status_code == 422 and "ts" in response.json()["detail"]


def test_an_item_that_is_no_object_or_nests_is_one_rejected_event(api: TestClient) -> None:
    user = "live-user-shapes"
    events = [_event(user, event_type="view", event_id="s1"), 5, ["a"], None,
              _event(user, event_type="view", extra={"a": 1}),
              _event(user, event_type="view", event_id="s2")]
    response = api.post("/v1/events", json={"events": events})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["applied"], body["rejected"]) == (2, 4)
    statuses = [result["status"] for result in body["results"]]
    assert statuses == ["applied", "rejected", "rejected", "rejected", "rejected", "applied"]
    assert body["results"][1]["problems"] == [
        "events: row 1: got '5', expected an object of the events contract's columns "
        "(docs/data.md)"]
    assert "row 3" in body["results"][3]["problems"][0]  # null: not an event either
    assert body["results"][4]["problems"] == [
        "events: row 4, column 'extra': got '{\"a\":1}', expected a column of the events "
        "contract (docs/data.md)"]


def test_a_list_or_an_object_as_a_columns_value_rejects_its_event(api: TestClient) -> None:
    """As a file's cell: they were stored as JSON text (a category '["coffee","tea"]', a
    user '["nest-1"]'), and one nested some 960 levels deep answered a 500."""
    user = "live-user-nesting"
    events = [_event(user, event_type="view", category=["coffee", "tea"]),
              _event(["nest-1"], event_type="view"),  # type: ignore[arg-type]
              _event(user, event_type="view", item_id={"sku": 1}),
              _event(user, event_type="view", category="DEEP"),
              _event(user, event_type="view", deep_key="DEEP"),
              _event(user, event_type="view", category="tea")]
    deep = "[" * 950 + '"tea"' + "]" * 950
    body = json.dumps({"events": events}).replace('"DEEP"', deep)
    response = api.post("/v1/events", content=body,
                        headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [result["status"] for result in results] == ["rejected"] * 5 + ["applied"]
    assert ("expected a single value (text, a number, true or false), not a list or an "
            "object") in results[0]["problems"][0]
    assert "column 'user_id'" in results[1]["problems"][0]


def test_absurd_ids_and_control_characters_are_rejected_per_event(api: TestClient) -> None:
    user = "live-user-text"
    events = [_event("u" * 5000, event_type="view"),
              _event(user, event_type="view", category="cof\x00fee"),
              _event(user, event_type="view", brand="b" * 257),
              _event(user, event_type="view", item_id="i\x1b[31m"),
              _event("u" * 128, event_type="view", category="coffee")]
    response = api.post("/v1/events", json={"events": events})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [result["status"] for result in results] == ["rejected"] * 4 + ["applied"]
    expected = [("user_id", "at most 128 characters"), ("category", "without control"),
                ("brand", "at most 256 characters"), ("item_id", "without control")]
    for result, (column, words) in zip(results, expected, strict=False):
        assert f"column '{column}'" in result["problems"][0] and words in result["problems"][0]
    # the longest accepted user id is one the decision path takes
    assert api.get(f"/v1/users/{'u' * 128}/decision").status_code == 200


def test_a_request_of_nothing_but_non_objects_is_a_422(api: TestClient) -> None:
    response = api.post("/v1/events", json={"events": [1, "two"]})
    assert response.status_code == 422 and "an object" in response.json()["detail"]


def test_malformed_json_is_a_4xx(api: TestClient) -> None:
    response = api.post("/v1/events", content=b'{"events": [', headers={
        "Content-Type": "application/json"})
    assert 400 <= response.status_code < 500


def test_feedback_joins_a_decision(api: TestClient, served_world: ServedWorld) -> None:
    decision = api.get(f"/v1/users/{served_world.users[2]}/decision").json()
    response = api.post("/v1/feedback", json={"decision_id": decision["decision_id"],
                                              "type": "open"})
    assert response.status_code == 200 and response.json()["user_id"] == served_world.users[2]
    unknown = api.post("/v1/feedback", json={"decision_id": "nope", "type": "click"})
    assert unknown.status_code == 404
    wrong_offer = api.post("/v1/feedback", json={"decision_id": decision["decision_id"],
                                                 "type": "redemption", "offer_id": "zzz"})
    assert wrong_offer.status_code == 422


def test_offers_are_managed_by_admins(served_world: ServedWorld) -> None:
    settings = served_world.settings(api_keys={ADMIN: "admin", DECIDE: "decide"})
    offer = {"offer_id": "flash-3", "kind": "voucher", "value": 3, "cost": 3}
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/offers").status_code == 401
        listed = client.get("/v1/offers", headers={"X-API-Key": DECIDE})
        assert listed.status_code == 200 and listed.json()["offers"]
        forbidden = client.put("/v1/offers/flash-3", json=offer,
                               headers={"X-API-Key": DECIDE})
        assert forbidden.status_code == 403
        admin = {"Authorization": f"Bearer {ADMIN}"}
        put = client.put("/v1/offers/flash-3", json=offer, headers=admin)
        assert put.status_code == 200 and put.json()["offer"]["budget_status"]["spent"] == 0
        bad = client.put("/v1/offers/flash-3", json={**offer, "cost": -1}, headers=admin)
        assert bad.status_code == 422
        assert client.get("/v1/offers/flash-3", headers=admin).json()["offer_id"] == "flash-3"
        assert client.delete("/v1/offers/flash-3", headers=admin).status_code == 200
        assert client.get("/v1/offers/flash-3", headers=admin).status_code == 404


def test_models_are_listed_and_reloaded(api: TestClient) -> None:
    listed = api.get("/v1/models").json()
    assert listed["serving"] == listed["promoted"] and listed["serving"] in listed["versions"]
    assert api.post("/v1/models/reload").json()["serving"] == listed["serving"]


def test_health_readiness_and_metrics(api: TestClient, served_world: ServedWorld) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/readyz").json()["ready"] is True
    api.get(f"/v1/users/{served_world.users[0]}/decision")
    metrics = api.get("/metrics").text
    assert 'nbo_decisions_total{source="model"}' in metrics
    assert 'route="/v1/users/{user_id}/decision"' in metrics
    for stage in ("read", "decide", "log", "redis_wait"):
        assert f'nbo_decision_stage_seconds_count{{stage="{stage}"}}' in metrics


def test_an_outage_answers_503_without_redis_details(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    try:
        settings = Settings(redis_url=server.url, models_dir=tmp_path / "models",
                            data_dir=tmp_path / "data")
        with TestClient(create_app(settings)) as client:
            server.stop()
            events = [_event("u1", event_type="view"), _event("u1", event_type="teleport"),
                      _event("u2", event_type="view")]
            response = client.post("/v1/events", json={"events": events})
    finally:
        server.stop()
    assert response.status_code == 503
    assert response.json()["detail"] == (
        "Redis is unreachable: the first 0 of the 2 valid events were stored, the rest were "
        "not; send the request again (event ids make that safe)")
    assert str(server.socket_path) not in response.text


def test_too_many_events_are_refused(served_world: ServedWorld) -> None:
    events = [_event("x", event_type="view") for _ in range(3)]
    with TestClient(create_app(served_world.settings(max_events_per_request=2))) as client:
        response = client.post("/v1/events", json={"events": events})
        at_most = client.post("/v1/events", json={"events": events[:2]})
    assert response.status_code == 413
    assert "NBO_MAX_EVENTS_PER_REQUEST" in response.json()["detail"]
    assert at_most.status_code == 200 and at_most.json()["applied"] == 2


@pytest.mark.parametrize(("body", "location", "message"), [
    ({"events": []}, "body.events", "at least 1 item"),
    ({"events": [{"user_id": "x", "ts": "2026-01-01T00:00:00Z", "event_type": "view"}],
      "evnts": []}, "body.evnts", "not permitted"),
])
def test_an_events_request_of_no_event_or_an_unknown_key_says_so(
        api: TestClient, body: dict[str, object], location: str, message: str) -> None:
    response = api.post("/v1/events", json=body)
    assert response.status_code == 422, response.text
    problems = response.json()["problems"]
    assert [problem["location"] for problem in problems] == [location]
    assert message in problems[0]["message"]


@pytest.mark.parametrize("failure", [
    StoreContentionError("could not apply an event for user 'busy': 20 concurrent updates "
                         "in a row; retry later"),
    redis.ConnectionError("Error 111 connecting to /tmp/redis.sock"),
], ids=["contention", "outage"])
def test_a_request_cut_short_says_how_many_events_were_stored(
        api: TestClient, monkeypatch: pytest.MonkeyPatch, failure: Exception) -> None:
    """Too many writers on one user, or Redis lost, stop a request part way: its 503 said
    only 'retry later', and a client resending it applied the events already stored twice."""
    store: RedisFeatureStore = api.app.state.services.store  # type: ignore[attr-defined]
    apply = store.apply_plan
    calls = {"n": 0}

    def contended(event: Event) -> Plan[Applied]:
        calls["n"] += 1
        if calls["n"] == 3:
            raise failure
        return apply(event)

    monkeypatch.setattr(store, "apply_plan", contended)
    events = [_event("busy", event_type="view", category="tea",
                     event_id=f"busy-{type(failure).__name__}-{n}") for n in range(5)]
    response = api.post("/v1/events", json={"events": events})
    assert response.status_code == 503
    assert "the first 2 of the 5 valid events were stored" in response.json()["detail"]
    assert "redis.sock" not in response.text  # the log's, never the client's
