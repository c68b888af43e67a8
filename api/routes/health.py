"""/healthz (the process is up), /readyz (Redis and a model), /metrics (Prometheus)."""

from __future__ import annotations

import logging

import orjson
import redis
from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse

from api.schemas import Readiness
from api.services import ServicesDep

router = APIRouter(tags=["health"])
logger = logging.getLogger(__name__)


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Redis answers and a model is loaded", responses={
    200: {"model": Readiness, "description": "ready"},
    503: {"model": Readiness, "description": "not ready: each problem named"}})
def readyz(services: ServicesDep) -> Response:
    problems = []
    try:
        services.client.ping()
    except redis.RedisError as error:  # its text names hosts and socket paths: logged only
        logger.warning("/readyz: Redis did not answer: %s", error)
        problems.append(f"Redis unreachable ({type(error).__name__}); see the server's log")
    if services.engine.models is None:
        problems.append("no model loaded: promote a version, then POST /v1/models/reload")
    body = {"ready": not problems, "problems": problems}
    return Response(orjson.dumps(body), status_code=503 if problems else 200,
                    media_type="application/json")


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse,
            responses={200: {"description": "Prometheus' text format, every worker's summed"}})
def metrics(services: ServicesDep) -> Response:
    body, content_type = services.metrics.render()
    return Response(body, media_type=content_type)
