"""The OpenAPI document describes what the routes answer: the error body every error has,
the errors each endpoint may give, the offer fields PUT refuses, the block's HTML."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from pydantic import TypeAdapter

from api.schemas import Decisions, ErrorBody, Readiness
from decisions.outcome import Decision
from tests.api.conftest import ServedWorld


def _operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{method.upper()} {path}": operation
            for path, methods in document["paths"].items() if path.startswith("/v1/")
            for method, operation in methods.items()}


def test_every_v1_error_is_described_by_the_body_the_api_sends(
        api: TestClient, served_world: ServedWorld) -> None:
    document = api.get("/openapi.json").json()
    error_body = {"$ref": "#/components/schemas/ErrorBody"}
    for name, operation in _operations(document).items():
        for status in ("401", "403", "413", "422", "503"):
            content = operation["responses"][status]["content"]["application/json"]
            assert content["schema"] == error_body, (name, status)
    assert "HTTPValidationError" not in document["components"]["schemas"]
    invalid = api.get(f"/v1/users/{served_world.users[0]}/decision", params={"n_offers": 99})
    assert invalid.status_code == 422
    problem = ErrorBody.model_validate(invalid.json()).problems
    assert problem is not None and problem[0].location == "query.n_offers"
    unknown = api.get("/v1/offers/no-such-offer")
    assert unknown.status_code == 404 and ErrorBody.model_validate(unknown.json()).detail
    assert "404" in _operations(document)["GET /v1/offers/{offer_id}"]["responses"]
    for name, operation in _operations(document).items():  # a body that is no JSON
        assert ("400" in operation["responses"]) == ("requestBody" in operation), name
    assert "409" in _operations(document)["POST /v1/models/reload"]["responses"]


def test_offers_and_blocks_are_described_as_they_are_taken_and_answered(
        api: TestClient) -> None:
    document = api.get("/openapi.json").json()
    assert document["components"]["schemas"]["OfferInput"]["additionalProperties"] is False
    block = _operations(document)["GET /v1/users/{user_id}/blocks/{block}"]
    assert "text/html" in block["responses"]["200"]["content"]


def test_answers_are_described_with_their_bodies_headers_and_304s(
        api: TestClient, served_world: ServedWorld) -> None:
    document = api.get("/openapi.json").json()
    operations = _operations(document)
    decision = operations["GET /v1/users/{user_id}/decision"]["responses"]
    assert decision["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Decision"}
    for route in ("GET /v1/users/{user_id}/decision", "GET /v1/users/{user_id}/blocks/{block}"):
        responses = operations[route]["responses"]
        assert {"ETag", "Cache-Control"} <= set(responses["200"]["headers"]), route
        assert "content" not in responses["304"] and "ETag" in responses["304"]["headers"]
    batch = operations["POST /v1/decisions"]["responses"]["200"]["content"]
    assert batch["application/json"]["schema"] == {"$ref": "#/components/schemas/Decisions"}
    for operation in operations.values():
        assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]
        assert "Retry-After" in operation["responses"]["503"]["headers"]
    readyz = document["paths"]["/readyz"]["get"]["responses"]
    assert readyz["503"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Readiness"}
    assert "text/plain" in document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    # what is sent is what is described
    plain = api.get(f"/v1/users/{served_world.users[0]}/decision")
    assert plain.headers["Cache-Control"] == "no-store" and "ETag" not in plain.headers
    answer = api.get(f"/v1/users/{served_world.users[0]}/decision",
                     params={"campaign_id": "described", "explain": "true"})
    TypeAdapter(Decision).validate_json(answer.content)
    tag = answer.headers["ETag"]
    assert api.get(f"/v1/users/{served_world.users[0]}/decision",
                   params={"campaign_id": "described", "explain": "true"},
                   headers={"If-None-Match": tag}).status_code == 304
    many = api.post("/v1/decisions", json={"user_ids": served_world.users[:3]})
    assert len(Decisions.model_validate_json(many.content).decisions) == 3
    Readiness.model_validate_json(api.get("/readyz").content)
