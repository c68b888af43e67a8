"""Bodies over the limit get a JSON 413, declared or streamed; smaller ones pass intact."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel
from starlette.responses import PlainTextResponse
from starlette.types import Message, Receive, Scope, Send

from api.errors import install_error_handlers
from api.limits import BodySizeLimit

LIMIT = 1024


class Events(BaseModel):
    events: list[str]


def make_app(calls: list[str]) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=LIMIT)

    @app.post("/raw")
    async def raw(request: Request) -> PlainTextResponse:
        calls.append("raw")
        body = await request.body()
        return PlainTextResponse(body)

    @app.post("/events")
    async def events(payload: Events) -> dict[str, int]:
        calls.append("events")
        return {"n": len(payload.events)}

    @app.post("/forgiving")
    async def forgiving(request: Request) -> PlainTextResponse:
        try:
            await request.body()
        except Exception:
            return PlainTextResponse("swallowed")
        return PlainTextResponse("read")

    return app


@pytest.fixture
def calls() -> list[str]:
    return []


@pytest.fixture
def client(calls: list[str]) -> TestClient:
    return TestClient(make_app(calls))


def chunks(total: int, size: int = 100) -> Iterator[bytes]:
    """A streamed body: httpx sends it chunked, without Content-Length."""
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        sent += piece
        yield b"x" * piece


def test_declared_length_over_the_limit_is_refused_unread(
    client: TestClient, calls: list[str],
) -> None:
    response = client.post("/raw", content=b"x" * 2000)
    assert response.status_code == 413
    assert response.json() == {
        "error": "request_too_large",
        "detail": f"the body is 2000 bytes; the limit is {LIMIT} (NBO_MAX_REQUEST_BYTES)",
    }
    assert calls == []


def test_chunked_body_over_the_limit_is_refused(client: TestClient) -> None:
    response = client.post("/raw", content=chunks(5000))
    assert response.status_code == 413
    body = response.json()
    assert body["error"] == "request_too_large"
    assert body["detail"].startswith("the body is at least ")
    assert f"the limit is {LIMIT} (NBO_MAX_REQUEST_BYTES)" in body["detail"]


def test_chunked_json_body_over_the_limit_is_413_not_400(client: TestClient) -> None:
    response = client.post("/events", content=chunks(5000),
                           headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == "request_too_large"


def test_app_swallowing_the_error_still_answers_413(client: TestClient) -> None:
    response = client.post("/forgiving", content=chunks(5000))
    assert response.status_code == 413
    assert response.json()["error"] == "request_too_large"


@pytest.mark.parametrize("size", [0, 1000, LIMIT])
def test_bodies_up_to_the_limit_pass_intact(client: TestClient, size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + b"y" * (size % 256)
    response = client.post("/raw", content=payload)
    assert response.status_code == 200
    assert response.content == payload
    streamed = client.post("/raw", content=chunks(size))
    assert streamed.status_code == 200
    assert streamed.content == b"x" * size


def test_json_route_under_the_limit_works(client: TestClient, calls: list[str]) -> None:
    response = client.post("/events", json={"events": ["a", "b"]})
    assert response.json() == {"n": 2}
    assert calls == ["events"]


def test_streaming_stops_at_the_chunk_that_crosses_the_limit() -> None:
    """Driven as raw ASGI: the middleware must not read (buffer) past the limit."""
    pulled: list[int] = []
    sent: list[Message] = []

    async def receive() -> Message:
        pulled.append(1)
        return {"type": "http.request", "body": b"x" * 300, "more_body": True}  # endless

    async def send(message: Message) -> None:
        sent.append(message)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if not message.get("more_body"):
                break
        await PlainTextResponse("never")(scope, receive, send)

    scope: Scope = {"type": "http", "method": "POST", "path": "/", "headers": []}
    asyncio.run(BodySizeLimit(app, max_bytes=LIMIT)(scope, receive, send))
    assert len(pulled) == 4  # 1200 bytes > 1024
    assert sent[0]["status"] == 413
    assert b"the body is at least 1200 bytes" in sent[1]["body"]


def test_other_scopes_pass_through() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    async def receive() -> Message:
        raise AssertionError("not called")

    async def send(message: Message) -> None:
        raise AssertionError("not called")

    asyncio.run(BodySizeLimit(app, max_bytes=0)({"type": "lifespan"}, receive, send))
    assert seen == ["lifespan"]


def test_negative_limit_is_refused() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        return None

    with pytest.raises(ValueError, match="max_bytes"):
        BodySizeLimit(app, max_bytes=-1)
