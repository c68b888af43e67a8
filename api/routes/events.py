"""POST /v1/events (live feature updates) and POST /v1/feedback (outcomes of decisions)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import redis
from fastapi import APIRouter

from api.auth import Ingest
from api.limits import ensure_within
from api.schemas import (
    EventOutcome,
    EventsRequest,
    EventsResponse,
    FeedbackRequest,
    FeedbackResponse,
)
from api.services import Services, ServicesDep
from decisions import keys
from features.contract.records import check_events
from features.store.base import Applied
from nbo.errors import DataContractError, NboError, RedisUnavailableError
from nbo.redis_plan import Plan, Step

router = APIRouter(prefix="/v1", tags=["events"])


class UnknownDecision(NboError):
    http_status = 404


class NoEventAccepted(DataContractError):
    """Every event of the request was rejected (the body lists why, per event)."""


@router.post("/events", summary="Live events: features change at once")
async def post_events(body: EventsRequest, services: ServicesDep, _: Ingest) -> EventsResponse:
    return await services.run(_apply_events(body, services))


def _apply_events(body: EventsRequest, services: Services) -> Plan[EventsResponse]:
    ensure_within(len(body.events), services.settings.max_events_per_request, "events",
                  "NBO_MAX_EVENTS_PER_REQUEST")
    checked = check_events(body.events, source="events")
    results = {index: EventOutcome(index=index, status="rejected",
                                   problems=[str(problem) for problem in problems])
               for index, problems in checked.problems.items()}
    try:
        for index, event in checked.events:
            applied = yield from services.store.apply_plan(event)
            results[index] = EventOutcome(
                index=index, status="applied" if applied is Applied.APPLIED else "duplicate")
    except redis.RedisError as error:
        services.metrics.redis_errors.inc()
        stored = sum(1 for r in results.values() if r.status != "rejected")
        raise RedisUnavailableError(
            f"Redis is unreachable ({error}); the first {stored} valid events were stored, "
            "the rest were not: send the request again (event ids make it safe)") from error
    ordered = [results[index] for index in sorted(results)]
    counts = {status: sum(1 for r in ordered if r.status == status)
              for status in ("applied", "duplicate", "rejected")}
    for status, count in counts.items():
        services.metrics.events.labels(status).inc(count)
    response = EventsResponse(applied=counts["applied"], duplicates=counts["duplicate"],
                              rejected=counts["rejected"], results=ordered)
    if counts["rejected"] == len(ordered):
        raise NoEventAccepted("no event was accepted: " + "; ".join(
            problem for result in ordered for problem in result.problems[:3]))
    return response


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
