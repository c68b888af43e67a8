"""Input found to break the API: each gets a 4xx that says what to fix (or, in a list, is
rejected on its own), and nothing it leaves behind breaks a later answer."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import ServedWorld
from tests.decisions.test_keys import same_tag_prefix

JSON = {"content-type": "application/json"}
HALF = "<lone surrogate>"  # sent as \ud800: valid JSON text, yet no valid string


def _with_halves(value: object) -> bytes:
    """`value`'s JSON, each HALF string in it a lone UTF-16 surrogate."""
    return orjson.dumps(value).replace(orjson.dumps(HALF), b'"\\ud800"')


def _event(user: str, **fields: object) -> dict[str, object]:
    return {"user_id": user, "ts": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
            "event_id": uuid.uuid4().hex, **fields}


@pytest.mark.parametrize("event_type", ["purchase", "add_to_cart"])
def test_a_price_no_shop_charges_is_rejected_and_breaks_no_decision(
        api: TestClient, served_world: ServedWorld, event_type: str) -> None:
    user = served_world.users[30]
    huge = _event(user, event_type=event_type, price=1e308, quantity=2, category="coffee")
    fine = _event(user, event_type="view", category="coffee", item_id="i1")
    response = api.post("/v1/events", json={"events": [huge, fine]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["applied"], body["rejected"]) == (1, 1)
    assert "column 'price'" in body["results"][0]["problems"][0]
    assert api.get(f"/v1/users/{user}/decision").status_code == 200
    batch = api.post("/v1/decisions", json={"user_ids": [user, served_world.users[31]]})
    assert batch.status_code == 200, batch.text


def test_an_absurd_quantity_is_rejected(api: TestClient, served_world: ServedWorld) -> None:
    event = _event(served_world.users[32], event_type="purchase", price=10.0,
                   quantity=10**12, category="coffee")
    response = api.post("/v1/events", json={"events": [event]})
    assert response.status_code == 422
    assert "column 'quantity'" in response.json()["detail"]


def test_max_per_user_beyond_any_count_is_refused(api: TestClient) -> None:
    original = api.get("/v1/offers/coffee-guide").json()
    offer = {key: value for key, value in original.items() if key != "budget_status"}
    response = api.put("/v1/offers/huge-limit", json={**offer, "offer_id": "huge-limit",
                                                      "max_per_user": 2**63})
    assert response.status_code == 422, response.text
    assert "max_per_user" in response.text
    assert api.get("/v1/users/u0000001/decision").status_code == 200


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/v1/decisions", {"user_ids": [HALF]}),
    ("POST", "/v1/decisions", {"user_ids": ["u1"], "campaign_id": HALF}),
    ("POST", "/v1/decisions", {"user_ids": ["u1"], "journey": HALF}),
    ("POST", "/v1/feedback", {"decision_id": HALF, "type": "open"}),
    ("PUT", "/v1/offers/o-half", {"offer_id": "o-half", "kind": "content", "value": 0,
                                  "cost": 0, "categories": [HALF]}),
])
def test_a_lone_surrogate_gets_a_4xx(api: TestClient, method: str, path: str,
                                     body: object) -> None:
    response = api.request(method, path, content=_with_halves(body), headers=JSON)
    assert response.status_code == 422, response.text
    assert response.json()["error"]


def test_a_lone_surrogate_in_an_event_rejects_that_event_only(
        api: TestClient, served_world: ServedWorld) -> None:
    bad = {"user_id": "u1", "ts": "2026-01-01T00:00:00Z", "event_type": "view"}
    events = [{**bad, "user_id": HALF}, {**bad, "category": HALF}, {**bad, HALF: 1},
              _event(served_world.users[33], event_type="view", category="tea")]
    response = api.post("/v1/events", content=_with_halves({"events": events}), headers=JSON)
    assert response.status_code == 200, response.text
    assert (response.json()["applied"], response.json()["rejected"]) == (1, 3)


def test_ids_joined_by_colons_never_share_a_campaign_decision(
        api: TestClient, served_world: ServedWorld) -> None:
    user = served_world.users[34]
    prefix = same_tag_prefix(user)  # so both keys would sit under one hash tag
    first = api.get(f"/v1/users/{user}/decision",
                    params={"campaign_id": f"camp:{prefix}"}).json()
    other = api.get(f"/v1/users/{prefix}:{user}/decision", params={"campaign_id": "camp"}).json()
    assert other["user_id"] == f"{prefix}:{user}"
    assert other["decision_id"] != first["decision_id"]


@pytest.mark.parametrize("channels", ["", ",,", " , "])
def test_an_empty_channel_list_is_refused(api: TestClient, channels: str) -> None:
    response = api.get("/v1/users/u0000001/decision", params={"channels": channels})
    assert response.status_code == 422, response.text
    assert "channels" in response.text
    batch = api.post("/v1/decisions", json={"user_ids": ["u0000001"], "channels": []})
    assert batch.status_code == 422, batch.text


def test_an_event_from_the_future_is_rejected_on_its_own(
        api: TestClient, served_world: ServedWorld) -> None:
    user = served_world.users[35]
    later = {**_event(user, event_type="purchase", price=5.0, category="tea"),
             "ts": "2099-01-01T00:00:00Z"}
    ahead = {**_event(user, event_type="view", category="tea"),  # a clock a minute fast
             "ts": (datetime.now(UTC) + timedelta(minutes=1)).isoformat()}
    response = api.post("/v1/events", json={"events": [later, ahead]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["applied"], body["rejected"]) == (1, 1)
    assert "column 'ts'" in body["results"][0]["problems"][0]
    assert "future" in body["results"][0]["problems"][0]
    features = api.get(f"/v1/users/{user}/decision", params={"explain": "true"}).json()[
        "explanation"]["features"]
    assert all(value is None or not isinstance(value, int | float) or value >= 0
               for name, value in features.items() if name.startswith("days_since"))


def test_feedback_from_the_future_is_refused(api: TestClient) -> None:
    response = api.post("/v1/feedback", json={
        "decision_id": "d1", "type": "open", "ts": "9999-12-31T23:59:59Z"})
    assert response.status_code == 422
    assert "future" in response.text


@pytest.mark.parametrize("depth", [300, 900])
def test_an_event_nested_deep_is_rejected_on_its_own(
        api: TestClient, served_world: ServedWorld, depth: int) -> None:
    fine = _event(served_world.users[36], event_type="view", category="tea")
    nested = "[" * depth + "]" * depth
    body = '{"events": [{"user_id": "u1", "ts": "2026-01-01T00:00:00Z", "event_type": "view", '
    body += f'"category": {nested}}}, {orjson.dumps(fine).decode()}]}}'
    response = api.post("/v1/events", content=body.encode(), headers=JSON)
    assert response.status_code == 200, response.text
    assert (response.json()["applied"], response.json()["rejected"]) == (1, 1)


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_json_body_sent_as_another_type_is_told_the_header_to_send(
        api: TestClient, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = api.post("/v1/decisions", content=b'{"user_ids": ["u1"]}', headers=headers)
    assert response.status_code == 422
    assert "Content-Type: application/json" in response.json()["detail"]


@pytest.mark.parametrize(("body", "told"), [
    (b'{"user_ids": ["caf\xe9"]}', "not UTF-8 (byte 0xe9 at position 18)"),
    (b'{"user_ids": [' + b"1" * 5000 + b"]}", "could not be read as JSON"),
    (b'{"user_ids": ' + b"[" * 3000 + b"]" * 3000 + b"}", "nested too deeply"),
])
def test_a_body_that_cannot_be_read_says_why(api: TestClient, body: bytes, told: str) -> None:
    response = api.post("/v1/decisions", content=body, headers=JSON)
    assert 400 <= response.status_code < 500
    assert told in response.json()["detail"], response.text


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("POST", "/v1/offers", "GET"), ("DELETE", "/v1/models", "GET"),
    ("OPTIONS", "/v1/users/u1/decision", "GET"),
    ("PATCH", "/v1/offers/x", "DELETE, GET, PUT"),  # every route at the path, not the first
    ("POST", "/docs", "GET, HEAD")])  # FastAPI's own
def test_a_method_not_allowed_names_those_allowed(api: TestClient, method: str, path: str,
                                                  allowed: str) -> None:
    response = api.request(method, path)
    assert response.status_code == 405
    assert f"it allows {allowed}" in response.json()["detail"], response.text
    assert response.headers["allow"] == allowed
