"""One place that turns every error into a JSON response: `{"error": code, "detail": text}`.

`install_error_handlers(app)` maps nbo's own errors (`NboError`, by their `http_status`),
a Redis failure no route caught (a 503 with `Retry-After`: an outage degrades answers, it
never makes them 500s), request validation, Starlette's HTTP errors (unknown route, wrong
method) and anything unexpected (a 500 whose traceback goes to the log, never the client).
"""

from __future__ import annotations

import json
import logging
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING

import orjson
import redis
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match

from api.auth import key_refusal
from features.contract.problems import validation_message
from nbo.errors import NboError, RedisUnavailableError

if TYPE_CHECKING:
    from api.services import Services

logger = logging.getLogger(__name__)

#: A JSON value as the handlers put it in a body.
JsonValue = str | int | float | bool | None | list["JsonValue"] | dict[str, "JsonValue"]

MAX_GOT_CHARS = 200
"""Longest rendering of an offending input echoed back, so a huge body is never mirrored."""

MAX_PROBLEMS = 50
"""Most validation problems listed in one response (a bad batch can have thousands)."""

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake_case(name: str) -> str:
    """`DataContractError` -> `data_contract_error`; `Method Not Allowed` -> `method_not_allowed`.

    Error codes are derived from class names and reason phrases, so they never drift apart.
    """
    words = _CAMEL_BOUNDARY.sub("_", name.strip())
    return re.sub(r"[^0-9A-Za-z]+", "_", words).strip("_").lower()


def error_response(
    status: int,
    error: str,
    detail: JsonValue,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: JsonValue,
) -> Response:
    """The JSON body every error response has; middleware that answers on its own uses it too."""
    payload: dict[str, JsonValue] = {"error": error, "detail": detail, **extra}
    try:
        body = orjson.dumps(payload)
    except TypeError:  # a lone surrogate echoed from the input: JSON escapes it, UTF-8 can't
        body = json.dumps(payload, ensure_ascii=True).encode()
    return Response(body, status_code=status, media_type="application/json",
                    headers=dict(headers) if headers else None)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on `app`; call it once in the app factory."""
    app.add_exception_handler(NboError, _nbo_error)  # type: ignore[arg-type]
    app.add_exception_handler(redis.RedisError, _redis_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected_error)


# -- the handlers ----------------------------------------------------------------------------


async def _nbo_error(request: Request, exc: NboError) -> Response:
    return nbo_error_response(request.method, request.url.path, exc)


def nbo_error_response(method: str, path: str, exc: NboError) -> Response:
    """nbo's own errors carry their status; an optional `headers` mapping is sent along,
    and a 503 says when to retry (`Retry-After`)."""
    status = exc.http_status
    if status >= 500:
        logger.warning("%s %s answered %d: %s", method, path, status, exc)
    return _nbo_error_body(exc)


def _nbo_error_body(exc: NboError) -> Response:
    given = getattr(exc, "headers", None)
    headers = dict(given) if isinstance(given, Mapping) else {}
    if exc.http_status == 503:  # unavailable for now: say when to try again
        headers.setdefault("Retry-After", str(_whole_seconds(exc.retry_after_s)))
    return error_response(
        exc.http_status, snake_case(type(exc).__name__), str(exc), headers=headers or None,
    )


async def _redis_error(request: Request, exc: redis.RedisError) -> Response:
    return redis_error_response(request.method, request.url.path, exc,
                                getattr(request.app.state, "services", None))


def redis_error_response(method: str, path: str, exc: redis.RedisError,
                         services: Services | None) -> Response:
    """A Redis failure no route caught, answered as a RedisUnavailableError: 503, counted in
    nbo_redis_errors_total (the app's `services`). Its text (hosts, socket paths) goes to the
    log, never the client."""
    retry_after_s = 1.0
    if services is not None:
        services.metrics.redis_errors.inc()
        retry_after_s = services.settings.redis_retry_after_s
    wait = _whole_seconds(retry_after_s)
    unreachable = isinstance(exc, redis.ConnectionError | redis.TimeoutError)
    # a reply error (not a lost connection) may be a bug: keep its traceback
    logger.warning("%s %s answered 503: Redis failed: %s: %s", method, path,
                   type(exc).__name__, exc, exc_info=None if unreachable else exc)
    if unreachable:
        detail = f"Redis is unreachable or did not answer in time; retry after {wait} s"
    else:
        detail = f"Redis failed this request (the error is logged); retry after {wait} s"
    return _nbo_error_body(RedisUnavailableError(detail, retry_after_s=wait))


def _whole_seconds(seconds: float) -> int:
    """A Retry-After: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(seconds))


async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
    """422 listing each problem by readable location, with a short rendering of what came
    (to a caller whose key the route takes: else what the key check answers)."""
    refused = key_refusal(request)
    if refused is not None:
        return await _nbo_error(request, refused)
    errors = exc.errors()
    problems = [_problem(error, exc.body) for error in errors[:MAX_PROBLEMS]]
    if not problems:  # never seen, but a 422 must still say something
        return error_response(422, "invalid_request", "the request is invalid", problems=[])
    where, message = problems[0]["location"], problems[0]["message"]
    if len(errors) == 1:
        detail = f"the request has 1 problem: {where}: {message}"
    else:
        shown = "" if len(errors) <= MAX_PROBLEMS else f" (the first {MAX_PROBLEMS} are listed)"
        detail = f"the request has {len(errors)} problems{shown}; the first is {where}: {message}"
    return error_response(422, "invalid_request", detail, problems=[*problems])


async def _http_error(request: Request, exc: HTTPException) -> Response:
    """Routing and protocol errors (404, 405, ...) in the same shape as everything else."""
    headers = exc.headers or None
    if exc.status_code in (204, 304):  # these must not have a body
        return Response(status_code=exc.status_code, headers=headers)
    try:
        code = snake_case(HTTPStatus(exc.status_code).phrase)
    except ValueError:
        code = f"http_{exc.status_code}"
    detail = _jsonable(exc.detail)
    if exc.status_code == 404 and detail == "Not Found":  # no route matched the path
        detail = (f"no endpoint answers {request.method} {request.url.path!r}; the endpoints "
                  "are listed at /docs")
    elif exc.status_code == 405:
        allowed = ", ".join(_methods_allowed(request))
        headers = {**(headers or {}), "Allow": allowed}
        detail = f"{request.method} is not allowed on {request.url.path!r}; it allows {allowed}"
    elif exc.status_code == 400 and exc.__cause__ is not None:  # a body FastAPI could not read
        refused = key_refusal(request)
        if refused is not None:
            return await _nbo_error(request, refused)
        detail = _unreadable_body(exc.__cause__)
    return error_response(exc.status_code, code, detail, headers=headers)


def _methods_allowed(request: Request) -> list[str]:
    """Every method some route answers at the request's path (Starlette's own Allow header
    names only the first route's): of every route the app factory lists in `app.state`
    (FastAPI wraps the included routers' routes)."""
    routes = getattr(request.app.state, "routes", request.app.routes)
    methods = {method for route in routes if route.matches(request.scope)[0] is Match.PARTIAL
               for method in getattr(route, "methods", None) or ()}
    return sorted(methods)


def _unreadable_body(cause: BaseException) -> str:
    """What to fix in a body FastAPI failed to read as JSON for a reason other than its
    syntax (which is a 422 naming the line and column)."""
    if isinstance(cause, UnicodeDecodeError):
        return (f"the body is not UTF-8 (byte 0x{cause.object[cause.start]:02x} at position "
                f"{cause.start}): send JSON encoded as UTF-8")
    if isinstance(cause, RecursionError):
        return "the body's JSON is nested too deeply to read: send it flatter"
    return f"the body could not be read as JSON: {' '.join(str(cause).split())}"


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    """500 naming an id to find the logged traceback; nothing about the failure leaks out."""
    error_id = uuid.uuid4().hex[:12]
    logger.error(
        "unexpected error %s on %s %s", error_id, request.method, request.url.path, exc_info=exc,
    )
    return error_response(
        500, "internal_error", f"an unexpected error; it is logged with id {error_id}",
    )


# -- validation problems ---------------------------------------------------------------------


def _problem(error: Mapping[str, object], body: object) -> dict[str, JsonValue]:
    """One pydantic error as `{"location", "message", "got"}`."""
    loc = error.get("loc", ())
    parts = [str(part) for part in loc] if isinstance(loc, Sequence) else [str(loc)]
    message = validation_message(error.get("msg", "invalid"))
    got: JsonValue
    if error.get("type") == "json_invalid":
        # FastAPI puts the character offset where parsing stopped in the location.
        position = loc[-1] if isinstance(loc, Sequence) and loc else None
        message, got = _json_problem(error, body, position)
        parts = parts[:-1] if isinstance(position, int) else parts
    elif error.get("type") == "missing":
        got = None  # the "input" of a missing field is its whole parent: not useful
    else:
        got = _short(error.get("input"))
    if parts == ["body"] and isinstance(error.get("input"), bytes):  # not read as JSON
        message += ("; the body was not read as JSON: send it with the header "
                    "Content-Type: application/json")
    return {"location": ".".join(parts) or "request", "message": message, "got": got}


def _json_problem(
    error: Mapping[str, object], body: object, position: object,
) -> tuple[str, JsonValue]:
    """Say where a malformed JSON body breaks (line, column, character) and show the spot."""
    ctx = error.get("ctx")
    reason = ctx.get("error") if isinstance(ctx, Mapping) else None
    reason = str(reason or "syntax error")
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if not isinstance(position, int) or not isinstance(body, str):
        return f"not valid JSON: {reason}", None
    line = body.count("\n", 0, position) + 1
    column = position - (body.rfind("\n", 0, position) + 1) + 1
    excerpt = body[max(0, position - 40): position + 40]
    return (
        f"not valid JSON: {reason} at line {line} column {column} (char {position})",
        excerpt,
    )


def _short(value: object) -> JsonValue:
    """`value` itself when its JSON is short, else its JSON text cut to MAX_GOT_CHARS."""
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int) and abs(value) < 2**63:
        return value
    if isinstance(value, str):
        return value if len(value) <= MAX_GOT_CHARS else value[:MAX_GOT_CHARS] + "..."
    try:
        text = orjson.dumps(value, default=repr).decode()
    except (TypeError, orjson.JSONEncodeError):
        text = repr(value)
    else:
        if len(text) <= MAX_GOT_CHARS:
            parsed: JsonValue = orjson.loads(text)
            return parsed
    return text[:MAX_GOT_CHARS] + "..."


def _jsonable(value: object) -> JsonValue:
    """An HTTPException detail as JSON: kept when orjson can encode it, else its str."""
    try:
        parsed: JsonValue = orjson.loads(orjson.dumps(value))
    except (TypeError, orjson.JSONEncodeError):
        return str(value)
    return parsed
