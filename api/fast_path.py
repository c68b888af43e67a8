"""Per-user decisions (single decisions and blocks) answered beneath FastAPI's routing and
dependency solving.

`GET /v1/users/{user_id}/decision` is the route apps call in their own request path, and
`GET /v1/users/{user_id}/blocks/{block}` the one email builders call for every recipient,
at rates where FastAPI's per-request work (matching the request against every route,
solving the route's dependencies: the query model, the two security schemes of the key
check, the services) costs about a sixth of a decision's CPU. `DecisionFastPath`, a pure
ASGI middleware, answers a well-formed, authorized request to either route itself, with
the route's own answer (`one_decision`, `one_block`), the key check it makes
(`ApiKeys.grant`) and its query model, and passes every other request to FastAPI untouched.
Whatever it is unsure of (an invalid parameter, a missing or refused key, a HEAD request, a
root path) goes to FastAPI too, so FastAPI's routes stay the reference: they document the
endpoints in OpenAPI and word every error.

It sits inside the metrics and in-flight middleware, so its requests are timed, labelled
with the route template and counted against NBO_MAX_IN_FLIGHT like any other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from functools import cache
from typing import TypeVar, cast, get_args, get_origin
from urllib.parse import parse_qsl

import redis
from fastapi.routing import APIRoute, APIRouter
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api.auth import ApiKeys, Role, presented_key
from api.errors import nbo_error_response, redis_error_response
from api.routes import blocks, decisions
from api.schemas import BlockOptions, DecisionOptions, valid_user_id
from api.services import Services
from decisions.blocks import BLOCKS, Block
from nbo.errors import NboError

Answer = Callable[[], Awaitable[Response]]
"""A request understood: the route's answer, still to be awaited."""
Options = TypeVar("Options", bound=DecisionOptions)


class DecisionFastPath:
    """Pure ASGI middleware: answers valid, authorized single decisions and blocks itself."""

    def __init__(self, app: ASGIApp, services: Services, keys: ApiKeys) -> None:
        self.app = app
        self.services = services
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        understood = self._understood(scope)
        if understood is None:
            await self.app(scope, receive, send)
            return
        scope["route"], answer = understood  # the metrics label, as FastAPI's router sets it
        try:
            response = await answer()
        except NboError as error:  # what FastAPI's handlers for these would answer
            response = nbo_error_response(scope["method"], scope["path"], error)
        except redis.RedisError as error:
            response = redis_error_response(scope["method"], scope["path"], error,
                                            self.services)
        await response(scope, receive, send)

    def _understood(self, scope: Scope) -> tuple[APIRoute, Answer] | None:
        """The route and answer of a request this path answers, else None."""
        if scope["type"] != "http" or scope["method"] != "GET" or scope.get("root_path"):
            return None
        found = _matching(scope["path"])
        if found is None:
            return None
        route, understand, path = found
        if not valid_user_id(path["user_id"]):
            return None
        headers = Headers(scope=scope)
        if not self.keys.open:
            try:
                self.keys.grant(presented_key(headers), Role.DECIDE)
            except NboError:
                return None
        answer = understand(self.services, path, scope["query_string"], headers)
        return None if answer is None else (route, answer)


def _decision(services: Services, path: Mapping[str, str], query: bytes,
              headers: Headers) -> Answer | None:
    options = _options(query, DecisionOptions)
    if options is None:
        return None
    return lambda: decisions.one_decision(services, path["user_id"], options,
                                          headers.getlist("if-none-match"))


def _block(services: Services, path: Mapping[str, str], query: bytes,
           headers: Headers) -> Answer | None:
    block, options = path["block"], _options(query, BlockOptions)
    if block not in BLOCKS or options is None:
        return None
    return lambda: blocks.one_block(services, path["user_id"], cast(Block, block), options,
                                    headers.getlist("if-none-match"))


def _route(router: APIRouter, endpoint: Callable[..., object]) -> APIRoute:
    return next(route for route in router.routes
                if isinstance(route, APIRoute) and route.endpoint is endpoint)


Understand = Callable[[Services, Mapping[str, str], bytes, Headers], Answer | None]
"""What reads one route's request (path parameters, query string, headers): its answer,
or None where FastAPI would refuse the request."""

FAST_ROUTES: tuple[tuple[APIRoute, Understand], ...] = (
    (_route(decisions.router, decisions.decide), _decision),
    (_route(blocks.router, blocks.get_block), _block),
)
"""FastAPI's routes answered here (their path patterns, and templates for the metrics)."""


def _matching(path: str) -> tuple[APIRoute, Understand, dict[str, str]] | None:
    """The route answered here whose pattern `path` matches, with the path parameters."""
    for route, understand in FAST_ROUTES:
        if (matched := route.path_regex.match(path)) is not None:
            return route, understand, matched.groupdict()
    return None


def _options(query: bytes, model: type[Options]) -> Options | None:
    """The query model from the query string as FastAPI fills it (a list field takes every
    value of its parameter, any other the last), or None where FastAPI would refuse it."""
    if not query:
        defaults: Options = _defaults(model)
        return defaults
    lists = _list_fields(model)
    last: dict[str, str] = {}
    every: dict[str, list[str]] = {}
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if name in lists:
            every.setdefault(name, []).append(value)
        else:
            last[name] = value
    try:
        options: Options = model.model_validate(last | every)
    except ValidationError:
        return None
    return options


@cache
def _defaults(model: type[Options]) -> Options:
    return model()


@cache
def _list_fields(model: type[DecisionOptions]) -> frozenset[str]:
    """Query parameters read as every value given (repeated), as FastAPI reads list fields."""
    return frozenset(name for name, field in model.model_fields.items()
                     if any(get_origin(kind) is list
                            for kind in (field.annotation, *get_args(field.annotation))))
