"""POST /v1/feedback's input contract: a time names its offset, a value is a finite number,
a redemption names its offer; each mistake a 422 saying what to fix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from tests.api.conftest import ServedWorld


@pytest.fixture
def decision_id(api: TestClient, served_world: ServedWorld) -> str:
    answer: str = api.get(f"/v1/users/{served_world.users[3]}/decision").json()["decision_id"]
    return answer


def _problem(response: Response) -> dict[str, object]:
    """The one problem of a 422."""
    assert response.status_code == 422, response.text
    problems = response.json()["problems"]
    assert len(problems) == 1, problems
    found: dict[str, object] = problems[0]
    return found


def test_a_time_without_an_offset_is_refused(api: TestClient, decision_id: str) -> None:
    naive = api.post("/v1/feedback", json={"decision_id": decision_id, "type": "open",
                                           "ts": "2026-01-05T10:00:00"})
    problem = _problem(naive)
    assert problem["location"] == "body.ts" and problem["got"] == "2026-01-05T10:00:00"
    assert "time-zone offset" in str(problem["message"])
    assert "2026-01-05T10:00:00+01:00" in str(problem["message"])  # an example to copy
    for ts in ("2026-01-05T10:00:00+01:00", "2026-01-05T09:00:00Z", 1767604200):
        aware = api.post("/v1/feedback", json={"decision_id": decision_id, "type": "open",
                                               "ts": ts})
        assert aware.status_code == 200, aware.text


@pytest.mark.parametrize("number", ["Infinity", "-Infinity", "NaN"])
def test_a_value_that_is_no_finite_number_is_refused(api: TestClient, decision_id: str,
                                                     number: str) -> None:
    body = f'{{"decision_id": "{decision_id}", "type": "conversion", "value": {number}}}'
    response = api.post("/v1/feedback", content=body,
                        headers={"Content-Type": "application/json"})
    problem = _problem(response)
    assert problem["location"] == "body.value"
    assert "finite number" in str(problem["message"])
    finite = api.post("/v1/feedback", json={"decision_id": decision_id, "type": "conversion",
                                            "value": 42.5})
    assert finite.status_code == 200, finite.text


@pytest.mark.parametrize("value", [True, False, "12.5", 2e9, -1.0, -0.01])
def test_a_value_that_is_no_order_value_is_refused(api: TestClient, decision_id: str,
                                                   value: object) -> None:
    response = api.post("/v1/feedback", json={"decision_id": decision_id, "type": "conversion",
                                              "value": value})
    assert _problem(response)["location"] == "body.value"


def test_a_time_a_little_ahead_of_the_servers_clock_is_taken(api: TestClient,
                                                               decision_id: str) -> None:
    """A sender's clock may run a few minutes fast: up to 10 minutes ahead is taken."""
    ahead = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    response = api.post("/v1/feedback", json={"decision_id": decision_id, "type": "open",
                                              "ts": ahead})
    assert response.status_code == 200, response.text
    later = (datetime.now(UTC) + timedelta(minutes=11)).isoformat()
    assert _problem(api.post("/v1/feedback", json={
        "decision_id": decision_id, "type": "open", "ts": later}))["location"] == "body.ts"


@pytest.mark.parametrize(("decision", "message"), [
    ("d" * 65, "at most 64 characters"), ("d\x1b[31m", "control character")])
def test_a_decision_id_too_long_or_with_a_control_character_is_refused(
        api: TestClient, decision: str, message: str) -> None:
    problem = _problem(api.post("/v1/feedback", json={"decision_id": decision,
                                                      "type": "click"}))
    assert problem["location"] == "body.decision_id" and message in str(problem["message"])


def test_a_redemption_must_name_its_offer(api: TestClient, decision_id: str) -> None:
    response = api.post("/v1/feedback", json={"decision_id": decision_id,
                                              "type": "redemption", "value": 30})
    problem = _problem(response)
    assert problem["location"] == "body.offer_id"
    assert "a redemption must name the offer redeemed" in str(problem["message"])
    assert "add offer_id" in str(problem["message"])
    # other feedback needs no offer
    click = api.post("/v1/feedback", json={"decision_id": decision_id, "type": "click"})
    assert click.status_code == 200, click.text


def test_feedback_for_an_unknown_decision_is_a_404_saying_what_to_send(api: TestClient) -> None:
    response = api.post("/v1/feedback", json={"decision_id": "f" * 32, "type": "click"})
    assert response.status_code == 404, response.text
    message = str(response.json())
    assert "send the decision_id a decision returned" in message
    assert "degraded: true" in message and "retry" in message  # an outage's decisions
