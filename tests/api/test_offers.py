"""Offers written through PUT /v1/offers/{id}: a mistake is a 422 naming it, never an offer
stored with a rule silently gone."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

OFFER = {"offer_id": "flash-7", "kind": "voucher", "value": 7, "cost": 7}


@pytest.fixture
def catalog(api: TestClient) -> Iterator[TestClient]:
    """The served world's API, with the test's offer removed after (the world is shared)."""
    yield api
    api.delete(f"/v1/offers/{OFFER['offer_id']}")


def _put(api: TestClient, body: dict[str, object]) -> dict[str, object]:
    response = api.put(f"/v1/offers/{OFFER['offer_id']}", json=body)
    assert response.status_code == 422, response.text
    assert api.get(f"/v1/offers/{OFFER['offer_id']}").status_code == 404  # nothing stored
    answer: dict[str, object] = response.json()
    return answer


def test_unknown_fields_are_named_with_the_fields_accepted(catalog: TestClient) -> None:
    body = _put(catalog, {**OFFER, "max_per_usr": 1, "budjet": 100})
    problems = body["problems"]
    assert isinstance(problems, list)
    assert [(p["location"], p["got"]) for p in problems] == [("body.budjet", 100),
                                                             ("body.max_per_usr", 1)]
    assert "did you mean 'budget'" in problems[0]["message"]
    assert "did you mean 'max_per_user'" in problems[1]["message"]
    for problem in problems:
        assert problem["message"].startswith("unknown field")
        assert "offer_id, kind, value, cost, categories" in problem["message"]
    nested = _put(catalog, {**OFFER, "eligibility": {"segmnts": ["buyer"]}})["problems"]
    assert isinstance(nested, list) and nested[0]["location"] == "body.eligibility.segmnts"
    assert "lifecycle_stages, segments" in nested[0]["message"]


def test_unknown_segment_forms_are_refused_with_the_forms_understood(
        catalog: TestClient) -> None:
    body = _put(catalog, {**OFFER, "eligibility": {"segments": ["buyer", "contry:FR",
                                                                "country:fr"]}})
    problems = body["problems"]
    assert isinstance(problems, list)
    assert [(p["location"], p["got"]) for p in problems] == [
        ("body.eligibility.segments.1", "contry:FR"), ("body.eligibility.segments.2", "country:fr")]
    assert "buyer, prospect, app or country:XX" in problems[0]["message"]
    segments = ["buyer", "prospect", "app", "country:FR"]
    put = catalog.put(f"/v1/offers/{OFFER['offer_id']}",
                      json={**OFFER, "eligibility": {"segments": segments}})
    assert put.status_code == 200, put.text
    assert put.json()["offer"]["eligibility"]["segments"] == segments


@pytest.mark.parametrize("field", ["value", "cost", "budget", "min_order_value"])
@pytest.mark.parametrize("number", ["Infinity", "-Infinity", "NaN"])
def test_non_finite_amounts_are_refused(catalog: TestClient, field: str, number: str) -> None:
    """JSON has no such numbers, but Python's parser takes them; stored, they became null and
    the offer fell out of the catalog."""
    before = catalog.get("/v1/offers").json()["offers"]
    text = json.dumps({**OFFER, field: 1}).replace(f'"{field}": 1', f'"{field}": {number}')
    response = catalog.put(f"/v1/offers/{OFFER['offer_id']}", content=text,
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["problems"][0]["location"] == f"body.{field}"
    assert "finite number" in response.json()["problems"][0]["message"]
    assert catalog.get("/v1/offers").json()["offers"] == before


def test_a_good_offer_is_still_stored_and_listed(catalog: TestClient) -> None:
    put = catalog.put(f"/v1/offers/{OFFER['offer_id']}", json={**OFFER, "budget": 70.5,
                                                               "max_per_user": 2})
    assert put.status_code == 200, put.text
    listed = {offer["offer_id"]: offer for offer in catalog.get("/v1/offers").json()["offers"]}
    assert listed["flash-7"]["budget"] == 70.5 and listed["flash-7"]["max_per_user"] == 2


@pytest.mark.parametrize(("field", "given"), [
    ("budget", False), ("value", True), ("cost", "5"), ("max_per_user", True),
    ("max_per_user", 1.5), ("value", 1e10), ("budget", 2e9)])
def test_amounts_and_counts_must_be_numbers_of_sane_size(catalog: TestClient, field: str,
                                                         given: object) -> None:
    """`budget: no` in YAML is false: read as a budget of 0, the offer was never chosen."""
    problems = _put(catalog, {**OFFER, field: given})["problems"]
    assert isinstance(problems, list) and problems[0]["location"] == f"body.{field}"


def test_ids_and_categories_are_trimmed_as_written(catalog: TestClient) -> None:
    assert _put(catalog, {**OFFER, "categories": ["  "]})["problems"]  # blank, trimmed
    put = catalog.put(f"/v1/offers/{OFFER['offer_id']}",
                      json={**OFFER, "offer_id": f" {OFFER['offer_id']} ",
                            "categories": [" coffee", "tea "]})
    assert put.status_code == 200, put.text
    stored = catalog.get(f"/v1/offers/{OFFER['offer_id']}").json()
    assert stored["offer_id"] == OFFER["offer_id"] and stored["categories"] == ["coffee", "tea"]
    padded = f"/v1/offers/%20{OFFER['offer_id']}%20"  # the path's id is trimmed alike
    again = catalog.put(padded, json={**OFFER, "offer_id": f" {OFFER['offer_id']} "})
    assert again.status_code == 200, again.text
    assert catalog.get(padded).json()["offer_id"] == OFFER["offer_id"]
    for refused in ("%1Fzz%1E", "%20"):  # a control character, nothing but blanks
        assert catalog.get(f"/v1/offers/{refused}").status_code == 422


def test_an_offer_ending_before_it_starts_is_refused_at_valid_to(catalog: TestClient) -> None:
    body = _put(catalog, {**OFFER, "valid_from": "2026-03-01T00:00:00Z",
                          "valid_to": "2026-02-01T00:00:00Z"})
    problems = body["problems"]
    assert isinstance(problems, list) and [p["location"] for p in problems] == ["body.valid_to"]
    assert problems[0]["message"] == "a time later than valid_from (2026-03-01T00:00:00+00:00)"
