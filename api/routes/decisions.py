"""GET /v1/users/{user_id}/decision and POST /v1/decisions (batches for email builders)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Query, Response

from api.auth import Decide
from api.limits import ensure_within
from api.schemas import (
    BatchDecisionRequest,
    DecisionOptions,
    Decisions,
    IdPath,
    cached_responses,
    error_responses,
)
from api.services import Services, ServicesDep
from decisions.blocks import etag
from decisions.campaigns import Answer
from decisions.outcome import Decision, DecisionRequest

router = APIRouter(prefix="/v1", tags=["decisions"])


def decision_request(user_id: str, options: DecisionOptions) -> DecisionRequest:
    return DecisionRequest(
        user_id=user_id, journey=options.journey.value if options.journey else None,
        channels=(tuple(c.value for c in options.channels) if options.channels else None),
        campaign_id=options.campaign_id, n_offers=options.n_offers,
        n_categories=options.n_categories, n_items=options.n_items, explain=options.explain,
        country=options.country)


def count_decisions(services: Services, decisions: Sequence[Decision]) -> None:
    metrics = services.metrics
    for decision in decisions:
        metrics.decisions.labels(decision.source).inc()
        if decision.offers:
            metrics.offers_chosen.labels(decision.offers[0].offer_id).inc()


def count_answers(services: Services, answers: Sequence[Answer]) -> None:
    """`count_decisions` of the answers this call decided (one remembered from an earlier
    call was counted then)."""
    count_decisions(services, [answer.decided for answer in answers
                               if answer.decided is not None])


def json_response(content: object, headers: Mapping[str, str] | None = None) -> Response:
    """Pre-serialized: orjson writes the decision dataclasses directly."""
    return Response(orjson.dumps(content), media_type="application/json", headers=headers)


NOT_STORED = {"Cache-Control": "no-store"}
"""A decision outside a campaign is new at each call (its own id, logged): not to be kept."""


def cache_validators(content: bytes, ttl_s: int,
                     if_none_match: Sequence[str]) -> tuple[dict[str, str], bool]:
    """`content`'s ETag and Cache-Control (a remembered answer may be cached for as long as
    it is remembered; others not), and whether If-None-Match (its field lines, one list
    however many: none when absent) names its tag (weak comparison, lists and `*`, as RFC
    9110 has it for GET): then the answer is a 304."""
    tag = etag(content)
    headers = {"ETag": tag,
               "Cache-Control": f"private, max-age={ttl_s}" if ttl_s else "no-store"}
    given = {part.strip().removeprefix("W/") for line in if_none_match
             for part in line.split(",")}
    return headers, "*" in given or tag in given


async def one_decision(services: Services, user_id: str, options: DecisionOptions,
                       if_none_match: Sequence[str] = ()) -> Response:
    """The answer of `GET /v1/users/{user_id}/decision` to a valid, authorized request
    (the route below, and api/fast_path.py for most requests): with a campaign, the
    campaign's decision for the user (decisions/campaigns.py), cacheable, else a new one."""
    request = decision_request(user_id, options)
    if options.campaign_id:
        answer = (await services.run(services.campaigns.plan([request])))[0]
        count_answers(services, [answer])
        headers, unchanged = cache_validators(answer.body, answer.ttl_s, if_none_match)
        if unchanged:
            return Response(status_code=304, headers=headers)
        return Response(answer.body, media_type="application/json", headers=headers)
    decision = await services.decide(request)
    count_decisions(services, [decision])
    return json_response(decision, NOT_STORED)


@router.get("/users/{user_id:id}/decision", summary="The next best decision for one user",
            responses=cached_responses(
                {"model": Decision}, "the decision; with a campaign_id, the campaign's answer "
                "for the user, with its ETag and Cache-Control"))
async def decide(user_id: IdPath,
                 options: Annotated[DecisionOptions, Query()], services: ServicesDep,
                 _: Decide, if_none_match: Annotated[list[str] | None, Header()] = None,
                 ) -> Response:
    return await one_decision(services, user_id, options, if_none_match or ())


@router.post("/decisions", summary="Decisions for many users in one call",
             responses={**error_responses(400), 200: {
                 "model": Decisions, "description": "each user's decision, in their order"}})
def decide_many(body: BatchDecisionRequest, services: ServicesDep, _: Decide) -> Response:
    """In FastAPI's own thread pool, not on the request path's thread: a batch of 1,000
    decides for about a third of a second, which single decisions should not wait behind
    (its Redis steps still go through the event loop: `Services.run_from_thread`)."""
    ensure_within(len(body.user_ids), services.settings.max_batch_users, "users",
                  "NBO_MAX_BATCH_USERS")
    requests = [decision_request(u, body) for u in body.user_ids]
    if body.campaign_id:  # each user's decision for the campaign: a retry decides nothing again
        answers = services.run_from_thread(services.campaigns.plan(requests))
        count_answers(services, answers)
        return Response(b'{"decisions":[%s]}' % b",".join(a.body for a in answers),
                        media_type="application/json")
    decisions = services.run_from_thread(services.engine.decide_plan(requests))
    count_decisions(services, decisions)
    return json_response({"decisions": decisions})
