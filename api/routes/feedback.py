"""POST /v1/feedback: what happened after a decision (impressions, opens, clicks,
conversions, redemptions), tied to its decision_id (decisions/feedback.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import redis
from fastapi import APIRouter

from api.auth import Ingest
from api.schemas import FeedbackRequest, FeedbackResponse, error_responses
from api.services import ServicesDep
from decisions.feedback import Feedback, Recorded
from nbo.errors import RedisUnavailableError
from nbo.redis_plan import Plan

router = APIRouter(prefix="/v1", tags=["events"])


@router.post("/feedback", summary="What happened after a decision",
             responses=error_responses(400, 404))
async def post_feedback(body: FeedbackRequest, services: ServicesDep,
                        _: Ingest) -> FeedbackResponse:
    feedback = Feedback(body.decision_id, body.type, body.offer_id,
                        body.ts or datetime.now(UTC), body.value)
    def recording() -> Plan[Recorded]:
        # a decision made in an outage just over is logged first, so its feedback joins it
        yield from services.engine.log_unlogged_plan()
        return (yield from services.feedback.record_plan(feedback))

    try:
        recorded = await services.run(recording())
    except redis.RedisError as error:
        services.metrics.redis_errors.inc()
        raise RedisUnavailableError("Redis is unreachable; the feedback was not stored: send "
                                    "it again (a report already stored is not counted twice)"
                                    ) from error
    return FeedbackResponse(accepted=True, decision_id=body.decision_id,
                            user_id=recorded.user_id, duplicate=recorded.duplicate)
