"""POST /v1/feedback: what happened after a decision (impressions, opens, clicks,
conversions, redemptions), tied to its decision_id."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import redis
from fastapi import APIRouter

from api.auth import Ingest
from api.schemas import FeedbackRequest, FeedbackResponse
from api.services import Services, ServicesDep
from decisions import keys
from nbo.errors import DataContractError, NboError, RedisUnavailableError
from nbo.redis_plan import Plan, Step

router = APIRouter(prefix="/v1", tags=["events"])


class UnknownDecision(NboError):
    http_status = 404


@router.post("/feedback", summary="What happened after a decision")
async def post_feedback(body: FeedbackRequest, services: ServicesDep,
                        _: Ingest) -> FeedbackResponse:
    return await services.run(_record_feedback(body, services))


def _record_feedback(body: FeedbackRequest, services: Services) -> Plan[FeedbackResponse]:
    try:
        summary: dict[bytes, bytes] = (yield Step.one("HGETALL",
                                                      keys.decision(body.decision_id)))[0]
        if not summary:
            raise UnknownDecision(f"decision {body.decision_id!r} is unknown or older than "
                                  "NBO_OFFER_MEMORY_DAYS: send the decision_id a decision "
                                  "returned")
        user_id = summary[b"user_id"].decode()
        offers: list[str] = orjson.loads(summary[b"offers"])
        if body.offer_id is not None and body.offer_id not in offers:
            raise DataContractError(f"offer {body.offer_id!r} was not part of decision "
                                    f"{body.decision_id!r} (it offered {offers})")
        entry = {**body.model_dump(mode="json"), "user_id": user_id,
                 "ts": (body.ts or datetime.now(UTC)).isoformat()}
        yield Step.one("XADD", keys.FEEDBACK, "MAXLEN", "~", services.settings.decision_log_max,
                       "*", "f", orjson.dumps(entry))
        if body.type == "redemption" and body.offer_id is not None:
            offer = (yield from services.catalog.snapshot_plan()).get(body.offer_id)
            if offer is not None:
                yield from services.catalog.spend_plan(offer.offer_id, offer.cost)
    except redis.RedisError as error:
        services.metrics.redis_errors.inc()
        raise RedisUnavailableError(f"Redis is unreachable ({error}); the feedback was not "
                                    "stored: send it again") from error
    return FeedbackResponse(accepted=True, decision_id=body.decision_id, user_id=user_id)
