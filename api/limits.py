"""Refuse request bodies over NBO_MAX_REQUEST_BYTES with a JSON 413, before they are read.

A declared Content-Length over the limit is refused without calling the app; a chunked
body is counted as it streams and refused at the chunk that crosses the limit, so nothing
larger than the limit is ever held in memory.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response
from nbo.errors import NboError


class _BodyTooLarge(HTTPException):
    """Raised out of `receive` once the limit is crossed.

    An HTTPException, because FastAPI re-raises those from body parsing where it would turn
    any other exception into a generic 400; whatever handler answers it, the middleware
    replaces that answer with its own 413.
    """

    def __init__(self) -> None:
        super().__init__(status_code=413)


class BodySizeLimit:
    """Pure ASGI middleware: 413 for a request body larger than `max_bytes`."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, not {max_bytes}")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send, f"the body is {declared} bytes")
            return

        received = 0
        too_large = False
        refused = False  # our 413 went out: drop whatever the app still sends
        app_started = False  # the app began its response before the limit was crossed

        async def counting_receive() -> Message:
            nonlocal received, too_large
            if too_large:
                raise _BodyTooLarge
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal refused, app_started
            if refused:
                return
            if too_large and not app_started:
                refused = True
                await self._refuse(scope, receive, send, f"the body is at least {received} bytes")
                return
            if message["type"] == "http.response.start":
                app_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            # Once the body was cut off, whatever the app raised follows from that: the
            # answer is the 413 (unless the app had already started its own response).
            if not too_large or app_started:
                raise
        if too_large and not refused and not app_started:
            await self._refuse(scope, receive, send, f"the body is at least {received} bytes")

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, size: str) -> None:
        detail = f"{size}; the limit is {self.max_bytes} (NBO_MAX_REQUEST_BYTES)"
        response = error_response(413, "request_too_large", detail, headers={"Connection": "close"})
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    """The declared body size, or None when absent or unreadable (then chunks are counted)."""
    value = Headers(scope=scope).get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


class TooManyItems(NboError):
    """More users or events in one request than the configured limit."""

    http_status = 413


def ensure_within(count: int, limit: int, what: str, setting: str) -> None:
    """Refuse a request carrying more than `limit` items, naming the setting."""
    if count > limit:
        raise TooManyItems(f"{count} {what} in one request; the limit is {limit} ({setting}): "
                           "split the request")
