"""The FastAPI application: `create_app()` wires services, routers, errors and middleware.

`nbo serve` runs it under uvicorn (`api.app:create_app`, factory mode), one app per
worker process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext

from fastapi import FastAPI
from starlette.routing import Route
from threadpoolctl import threadpool_limits

from api.auth import ApiKeys
from api.errors import install_error_handlers
from api.fast_path import DecisionFastPath
from api.garbage import startup_objects_frozen
from api.limits import BodySizeLimit
from api.metrics import MetricsMiddleware
from api.routes import blocks, decisions, events, feedback, health, items, models, offers
from api.schemas import V1_ERRORS
from api.services import Services
from api.shedding import InFlightLimit
from nbo.settings import Settings, get_settings

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    keys = ApiKeys(settings.api_keys)  # before connecting: a bad NBO_API_KEYS fails at once
    services = Services.build(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # BLAS on one thread: a request's matrices are small, and its idle threads spin
        # on the cores the other workers, Redis and the clients need
        with (startup_objects_frozen() if settings.freeze_startup_objects else nullcontext(),
              threadpool_limits(limits=1)):
            # every worker serves the promoted model version, whichever answered a reload
            following = (asyncio.create_task(services.follow_promoted_forever(
                settings.model_poll_s)) if settings.model_poll_s else None)
            every_s = max(settings.redis_retry_after_s, 0.1)
            logging_unlogged = asyncio.create_task(services.log_unlogged_forever(every_s))
            keeping = (None if settings.redis_url else  # the embedded server: restarted if gone
                       asyncio.create_task(services.keep_embedded_redis_forever(every_s)))
            try:
                yield
            finally:
                if following is not None:
                    following.cancel()
                logging_unlogged.cancel()
                if keeping is not None:
                    keeping.cancel()
        services.connection.close()
        services.batch_connection.close()

    app = FastAPI(title="nbo", version="0.1.0", lifespan=lifespan,
                  description="Next best offer, channel and send time, per customer.")
    app.state.services = services
    app.state.api_keys = keys
    if keys.open:
        logger.warning("no API keys configured (NBO_API_KEYS): the API is open to anyone "
                       "who can reach it")
    install_error_handlers(app)
    v1 = (decisions.router, blocks.router, items.router, events.router, feedback.router,
          offers.router, models.router)
    for router in v1:
        app.include_router(router, responses=V1_ERRORS)
    app.include_router(health.router)
    # every route, as its router holds it (FastAPI's app.routes wraps included routers),
    # and the app's own (its docs)
    app.state.routes = (*(route for router in (*v1, health.router) for route in router.routes),
                        *(route for route in app.routes if isinstance(route, Route)))
    if settings.decision_fast_path:  # innermost: inside the limits and metrics
        app.add_middleware(DecisionFastPath, services=services, keys=keys)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(InFlightLimit, limit=settings.max_in_flight,
                       on_refused=services.metrics.refused.inc)
    app.add_middleware(MetricsMiddleware, metrics=services.metrics,  # outermost: times all
                       routes=app.state.routes)
    return app
