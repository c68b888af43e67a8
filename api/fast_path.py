"""Single decisions answered beneath FastAPI's routing and dependency solving.

`GET /v1/users/{user_id}/decision` is the route apps call in their own request path, at
rates where FastAPI's per-request work (matching the request against every route, solving
the route's dependencies: the query model, the two security schemes of the key check, the
services) costs about a sixth of a decision's CPU. `DecisionFastPath`, a pure ASGI
middleware, answers a well-formed, authorized request to that route itself, with the steps
the route takes (`one_decision`), the key check it makes (`ApiKeys.grant`) and its query
model, and passes every other request to FastAPI untouched. Whatever it is unsure of (an
invalid parameter, a missing or refused key, a HEAD request, a root path) goes to FastAPI
too, so FastAPI's route stays the reference: it documents the endpoint in OpenAPI and words
every error.

It sits inside the metrics and in-flight middleware, so its requests are timed, labelled
with the route template and counted against NBO_MAX_IN_FLIGHT like any other.
"""

from __future__ import annotations

from typing import get_args, get_origin
from urllib.parse import parse_qsl

from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from api.auth import ApiKeys, Role, presented_key
from api.errors import nbo_error_response
from api.routes.decisions import decide, one_decision, router
from api.schemas import USER_ID_MAX, DecisionOptions
from api.services import Services
from nbo.errors import NboError

_LISTS = frozenset(name for name, field in DecisionOptions.model_fields.items()
                   if any(get_origin(kind) is list
                          for kind in (field.annotation, *get_args(field.annotation))))
"""Query parameters read as every value given (repeated), as FastAPI reads list fields."""

_DEFAULTS = DecisionOptions()

ROUTE = next(route for route in router.routes
             if isinstance(route, APIRoute) and route.endpoint is decide)
"""FastAPI's route of single decisions: its path pattern, and its template for metrics."""


class DecisionFastPath:
    """Pure ASGI middleware: answers valid, authorized single decisions itself."""

    def __init__(self, app: ASGIApp, services: Services, keys: ApiKeys) -> None:
        self.app = app
        self.services = services
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = self._understood(scope)
        if request is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = ROUTE  # the metrics label, as FastAPI's router would set it
        user_id, options = request
        try:
            response = await one_decision(self.services, user_id, options)
        except NboError as error:  # what FastAPI's handler for nbo's errors would answer
            response = nbo_error_response(scope["method"], scope["path"], error)
        await response(scope, receive, send)

    def _understood(self, scope: Scope) -> tuple[str, DecisionOptions] | None:
        """The user and options of a request this path answers, else None."""
        if scope["type"] != "http" or scope["method"] != "GET" or scope.get("root_path"):
            return None
        matched = ROUTE.path_regex.match(scope["path"])
        if matched is None:
            return None
        user_id: str = matched["user_id"]
        if not 1 <= len(user_id) <= USER_ID_MAX:
            return None
        if not self.keys.open:
            try:
                self.keys.grant(presented_key(Headers(scope=scope)), Role.DECIDE)
            except NboError:
                return None
        options = _options(scope["query_string"])
        return None if options is None else (user_id, options)


def _options(query_string: bytes) -> DecisionOptions | None:
    """The query model from the query string as FastAPI fills it (a list field takes every
    value of its parameter, any other the last), or None where FastAPI would refuse it."""
    if not query_string:
        return _DEFAULTS
    last: dict[str, str] = {}
    every: dict[str, list[str]] = {}
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if name in _LISTS:
            every.setdefault(name, []).append(value)
        else:
            last[name] = value
    try:
        return DecisionOptions.model_validate(last | every)
    except ValidationError:
        return None
