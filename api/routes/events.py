"""POST /v1/events: live events update the users' features at once."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import redis
from fastapi import APIRouter

from api.auth import Ingest
from api.limits import ensure_within
from api.schemas import (
    FUTURE_SLACK,
    EventOutcome,
    EventsRequest,
    EventsResponse,
    error_responses,
)
from api.services import Services, ServicesDep
from features.contract.records import check_events
from features.store.base import Applied
from nbo.errors import DataContractError, RedisUnavailableError, StoreContentionError
from nbo.redis_plan import Plan

router = APIRouter(prefix="/v1", tags=["events"])
logger = logging.getLogger(__name__)


class NoEventAccepted(DataContractError):
    """Every event of the request was rejected (the body lists why, per event)."""


@router.post("/events", summary="Live events: features change at once",
             responses=error_responses(400))
async def post_events(body: EventsRequest, services: ServicesDep, _: Ingest) -> EventsResponse:
    return await services.run(_apply_events(body, services))


def _apply_events(body: EventsRequest, services: Services) -> Plan[EventsResponse]:
    ensure_within(len(body.events), services.settings.max_events_per_request, "events",
                  "NBO_MAX_EVENTS_PER_REQUEST")
    checked = check_events(body.events, source="events").until(
        datetime.now(UTC) + FUTURE_SLACK, source="events")
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
        # the error's text names hosts and socket paths: the log's, never the client's
        logger.warning("POST /v1/events: Redis failed after %d of %d valid events: %s",
                       stored, len(checked.events), error)
        raise RedisUnavailableError(
            f"Redis is unreachable: the first {stored} of the {len(checked.events)} valid "
            "events were stored, the rest were not; send the request again (event ids make "
            "that safe)") from error
    except StoreContentionError as error:  # too many writers on one user: retry the rest
        stored = sum(1 for r in results.values() if r.status != "rejected")
        raise StoreContentionError(
            f"{error}: the first {stored} of the {len(checked.events)} valid events were "
            "stored, the rest were not; send the rest again (or all of it: event ids make "
            "that safe)") from error
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
