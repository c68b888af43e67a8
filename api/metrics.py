"""Prometheus metrics of the API: request latency per route, decision stages, outcomes.

Each `Metrics` has its own registry, so several apps (tests, workers in one process) never
collide. With several worker processes (`nbo serve --workers N`), prometheus_client's
multiprocess mode is on (`PROMETHEUS_MULTIPROC_DIR`, set by `nbo serve` before the workers
start): each process writes its values to files there, and `/metrics`, whichever worker
answers, adds up every process's. `MetricsMiddleware` times every HTTP request as a pure
ASGI middleware and labels it with the route template, never the raw path, so label
cardinality stays bounded.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
"""Request latency buckets (s): a decision takes about a millisecond, a slow one a second."""

STAGE_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)
"""Decision stage buckets (s): stages (fetch, score, rules) take tens to hundreds of us."""

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"

UNMATCHED = "unmatched"
"""Route label of requests no route matched (404s, redirects)."""

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    """Every metric the API exports, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "nbo_request_seconds", "Time to answer an HTTP request, by route template.",
            ["route", "method", "status"], buckets=REQUEST_BUCKETS, registry=self.registry)
        self.stages = Histogram(
            "nbo_decision_stage_seconds", "Time spent in each stage of a decision: its own "
            "computing (read, decide, log) and waiting for Redis replies (redis_wait).",
            ["stage"], buckets=STAGE_BUCKETS, registry=self.registry)
        self.decisions = Counter(
            "nbo_decisions_total",
            "Decisions made, by what answered: model, country, global or degraded.",
            ["source"], registry=self.registry)
        self.offers_chosen = Counter(
            "nbo_offers_chosen_total", "Offers returned in first place, by offer.",
            ["offer_id"], registry=self.registry)
        self.redis_errors = Counter(
            "nbo_redis_errors_total", "Redis calls that failed or timed out.",
            registry=self.registry)
        self.refused = Counter(
            "nbo_requests_refused_total", "Requests answered 503 at once: the worker had "
            "NBO_MAX_IN_FLIGHT requests in flight.", registry=self.registry)
        self.events = Counter(
            "nbo_events_total", "Live events received, by outcome: applied, duplicate, rejected.",
            ["outcome"], registry=self.registry)

    def render(self) -> tuple[bytes, str]:
        """The body and content type of `GET /metrics` (Prometheus text format 0.0.4)."""
        if not os.environ.get(MULTIPROCESS_DIR):
            return generate_latest(self.registry), CONTENT_TYPE_PLAIN_0_0_4
        every_process = CollectorRegistry()
        MultiProcessCollector(every_process)  # type: ignore[no-untyped-call]
        return generate_latest(every_process), CONTENT_TYPE_PLAIN_0_0_4


class MetricsMiddleware:
    """Times each HTTP request into `metrics.requests`, labelled by the matched route."""

    def __init__(self, app: ASGIApp, metrics: Metrics,
                 routes: Sequence[BaseRoute] = ()) -> None:
        """`routes`: the app's, to label a request refused before routing (overloaded, too
        large) with the route it was for."""
        self.app = app
        self.metrics = metrics
        self.routes = tuple(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = self._template(scope)
            method = scope["method"] if scope["method"] in _METHODS else "other"
            self.metrics.requests.labels(route, method, str(status)).observe(
                time.perf_counter() - started)


    def _template(self, scope: Scope) -> str:
        """The template of the route a request is for, without convertors ({user_id}, not
        {user_id:id}): the router stores the route it matched in the scope; a request
        refused before routing is matched here, so it counts under its route."""
        route = scope.get("route")
        if route is None:  # the first route it fully matches, else by its path alone
            matches = [(candidate.matches(scope)[0], candidate) for candidate in self.routes]
            route = next((candidate for match in (Match.FULL, Match.PARTIAL)
                          for found, candidate in matches if found is match), None)
        return getattr(route, "path_format", None) or UNMATCHED
