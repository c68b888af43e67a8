"""Past NBO_MAX_IN_FLIGHT requests in flight in a worker, answer 503 at once.

Without a bound, a worker offered more than it can serve queues every request: all of
them wait longer and longer (seconds at twice the capacity), and callers in an app's
request path time out anyway, after having cost the server their full work. Answering
the excess at once with a 503 and `Retry-After` costs a fraction of a decision, keeps the
admitted requests' latency bounded (by about the limit times a decision's time), and lets
callers fall back to their default content straight away.

Health checks and metrics are never refused: a load balancer must still see the worker
alive, and an operator must still see why it refuses.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from api.errors import error_response

EXEMPT = frozenset({"/healthz", "/readyz", "/metrics"})
RETRY_AFTER_S = 1


class InFlightLimit:
    """Pure ASGI middleware: a 503 for each request beyond `limit` in flight (0: no limit).

    The count lives on the worker's event loop, which runs every middleware call, so it
    needs no lock (requests in threads are counted by the loop task that awaits them).
    """

    def __init__(self, app: ASGIApp, limit: int, on_refused: Callable[[], None]) -> None:
        if limit < 0:
            raise ValueError(f"limit must be >= 0, not {limit}")
        self.app = app
        self.limit = limit
        self.on_refused = on_refused
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.limit or scope["type"] != "http" or scope["path"] in EXEMPT:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            self.on_refused()
            detail = (f"this worker has {self.in_flight} requests in flight, its limit "
                      f"(NBO_MAX_IN_FLIGHT); retry after {RETRY_AFTER_S} s or add workers")
            response = error_response(503, "overloaded", detail,
                                      headers={"Retry-After": str(RETRY_AFTER_S)})
            await response(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
