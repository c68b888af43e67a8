"""Every error reaches the client as `{"error", "detail"}` JSON with the right status."""

from __future__ import annotations

import logging
from typing import Annotated

import pytest
import redis
from fastapi import FastAPI, HTTPException, Query
from fastapi.testclient import TestClient
from pydantic import BaseModel

from api.errors import MAX_GOT_CHARS, MAX_PROBLEMS, install_error_handlers, snake_case
from nbo.errors import NboError, RedisUnavailableError, StoreContentionError

SECRET = "password=hunter2 in a local variable"
SOCKET = "/var/run/secret-host/redis.sock"


class OfferNotFoundError(NboError):
    """A made-up 404 error of the kind routes raise."""

    http_status = 404


class RetryLaterError(NboError):
    """An error that sends a header along."""

    http_status = 429

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": "3"}


class Order(BaseModel):
    user_id: str
    quantities: list[int]


def make_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/offers/{offer_id}")
    async def offer(offer_id: str) -> None:
        raise OfferNotFoundError(f"offer {offer_id!r} is not in the catalog; PUT /v1/offers")

    @app.get("/redis")
    async def redis_down() -> None:
        raise RedisUnavailableError("Redis at localhost:6379 does not answer")

    @app.get("/redis/slow")
    async def redis_slow() -> None:
        raise RedisUnavailableError("Redis is starting", retry_after_s=2.5)

    @app.get("/contention")
    async def contention() -> None:
        raise StoreContentionError("too many writers on user u1")

    @app.get("/redis/lost")
    async def redis_lost() -> None:
        raise redis.ConnectionError(f"Error 2 connecting to unix socket: {SOCKET}.")

    @app.get("/redis/timeout")
    async def redis_timeout() -> None:
        raise redis.TimeoutError(f"Timeout reading from {SOCKET}")

    @app.get("/redis/refused")
    async def redis_refused() -> None:
        raise redis.ResponseError(f"WRONGTYPE on a key near {SOCKET}")

    @app.get("/busy")
    async def busy() -> None:
        raise RetryLaterError("too many requests")

    @app.get("/boom")
    async def boom() -> None:
        raise ValueError(SECRET)

    @app.get("/teapot")
    async def teapot() -> None:
        raise HTTPException(418, detail="short and stout", headers={"X-Pot": "1"})

    @app.get("/decision")
    async def decision(n_offers: Annotated[int, Query(ge=1, le=50)] = 5) -> dict[str, int]:
        return {"n_offers": n_offers}

    @app.post("/orders")
    async def orders(order: Order) -> Order:
        return order

    return app


@pytest.fixture
def client() -> TestClient:
    return TestClient(make_app(), raise_server_exceptions=False)


def test_nbo_error_maps_to_its_status_and_class_name(client: TestClient) -> None:
    response = client.get("/offers/spring10")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": "offer_not_found_error",
        "detail": "offer 'spring10' is not in the catalog; PUT /v1/offers",
    }


def test_nbo_server_side_error_keeps_its_status(client: TestClient) -> None:
    response = client.get("/redis")
    assert response.status_code == 503
    assert response.json()["error"] == "redis_unavailable_error"


def test_redis_unavailable_error_says_when_to_retry(client: TestClient) -> None:
    assert client.get("/redis").headers["retry-after"] == "1"
    assert client.get("/redis/slow").headers["retry-after"] == "3"  # whole seconds, up


def test_every_503_says_when_to_retry(client: TestClient) -> None:
    response = client.get("/contention")
    assert response.status_code == 503 and response.headers["retry-after"] == "1"


@pytest.mark.parametrize("path", ["/redis/lost", "/redis/timeout"])
def test_a_redis_failure_no_route_caught_is_a_503_to_retry(
    client: TestClient, caplog: pytest.LogCaptureFixture, path: str,
) -> None:
    with caplog.at_level(logging.WARNING, logger="api.errors"):
        response = client.get(path)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json() == {
        "error": "redis_unavailable_error",
        "detail": "Redis is unreachable or did not answer in time; retry after 1 s",
    }
    assert SOCKET not in response.text
    (record,) = [r for r in caplog.records if r.name == "api.errors"]
    assert record.levelno == logging.WARNING and SOCKET in record.getMessage()
    assert record.exc_info is None


def test_a_redis_reply_error_is_a_503_with_its_traceback_logged(
    client: TestClient, caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="api.errors"):
        response = client.get("/redis/refused")
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    body = response.json()
    assert body["error"] == "redis_unavailable_error"
    assert body["detail"].startswith("Redis failed this request")
    assert "WRONGTYPE" not in response.text and SOCKET not in response.text
    (record,) = [r for r in caplog.records if r.name == "api.errors"]
    assert record.exc_info is not None and record.exc_info[0] is redis.ResponseError


def test_nbo_error_headers_are_sent(client: TestClient) -> None:
    response = client.get("/busy")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"


def test_query_validation_lists_readable_problems(client: TestClient) -> None:
    response = client.get("/decision", params={"n_offers": 51})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_request"
    assert body["problems"] == [{
        "location": "query.n_offers",
        "message": "Input should be less than or equal to 50",
        "got": "51",
    }]
    assert body["detail"] == (
        "the request has 1 problem: query.n_offers: Input should be less than or equal to 50")


def test_huge_inputs_are_not_echoed(client: TestClient) -> None:
    response = client.get("/decision", params={"n_offers": "9" * 5000})
    got = response.json()["problems"][0]["got"]
    assert isinstance(got, str)
    assert len(got) <= MAX_GOT_CHARS + 3
    assert len(response.content) < 1000


def test_body_validation_locations_and_missing_fields(client: TestClient) -> None:
    response = client.post("/orders", json={"quantities": [1, "two"]})
    assert response.status_code == 422
    body = response.json()
    problems = {p["location"]: p for p in body["problems"]}
    assert problems["body.user_id"]["got"] is None
    assert problems["body.user_id"]["message"] == "Field required"
    assert problems["body.quantities.1"]["got"] == "two"
    assert body["detail"].startswith("the request has 2 problems; the first is body.")


def test_problem_list_is_capped(client: TestClient) -> None:
    response = client.post("/orders", json={"user_id": "u1", "quantities": ["x"] * 120})
    body = response.json()
    assert len(body["problems"]) == MAX_PROBLEMS
    assert "120 problems" in body["detail"]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{"user_id": "u1",, "quantities": []}', "line 1 column 18 (char 17)"),
        ('{\n  "user_id": "u1",\n  "quantities": [1 2]\n}', "line 3 column 20"),
    ],
)
def test_malformed_json_names_the_position(client: TestClient, text: str, where: str) -> None:
    response = client.post("/orders", content=text,
                           headers={"content-type": "application/json"})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_request"
    (problem,) = body["problems"]
    assert problem["location"] == "body"
    assert problem["message"].startswith("not valid JSON: Expecting")
    assert where in problem["message"]
    assert where in body["detail"]
    assert isinstance(problem["got"], str) and problem["got"] in text


def test_unknown_route_is_a_json_404(client: TestClient) -> None:
    response = client.get("/no/such/route")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": (
        "no endpoint answers GET '/no/such/route'; the endpoints are listed at /docs")}


def test_wrong_method_is_a_json_405(client: TestClient) -> None:
    response = client.delete("/decision")
    assert response.status_code == 405
    assert response.json() == {"error": "method_not_allowed",
                               "detail": "DELETE is not allowed on '/decision'; it allows GET"}
    assert response.headers["allow"] == "GET"


def test_http_exception_keeps_detail_and_headers(client: TestClient) -> None:
    response = client.get("/teapot")
    assert response.status_code == 418
    assert response.json() == {"error": "i_m_a_teapot", "detail": "short and stout"}
    assert response.headers["x-pot"] == "1"


def test_unexpected_error_is_a_500_with_an_id_and_no_traceback(
    client: TestClient, caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="api.errors"):
        response = client.get("/boom")
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "internal_error"
    assert body["detail"].startswith("an unexpected error; it is logged with id ")
    error_id = body["detail"].rsplit(" ", 1)[-1]
    assert "Traceback" not in response.text
    assert SECRET not in response.text
    assert "ValueError" not in response.text

    (record,) = [r for r in caplog.records if r.name == "api.errors"]
    assert error_id in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is ValueError


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("DataContractError", "data_contract_error"),
        ("Unauthorized", "unauthorized"),
        ("HTTPError", "http_error"),
        ("Method Not Allowed", "method_not_allowed"),
        ("Request-URI Too Long", "request_uri_too_long"),
    ],
)
def test_snake_case(name: str, expected: str) -> None:
    assert snake_case(name) == expected
