"""The OpenAPI document describes what the routes answer: the error body every error has,
the errors each endpoint may give, the offer fields PUT refuses, the block's HTML."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from api.schemas import ErrorBody
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
