"""GET /v1/users/{user_id}/blocks/{block}: a personalized block for email builders,
the same content for every fetch of one campaign, cacheable (ETag, Cache-Control)."""

from __future__ import annotations

import time
from typing import Annotated

import redis
from fastapi import APIRouter, Header, Path, Query, Response

from api.auth import Decide
from api.rendering import render_html
from api.routes.decisions import count_decisions, decision_request
from api.schemas import USER_ID_MAX, BlockOptions
from api.services import Services, ServicesDep
from decisions.blocks import Block, BlockCache, block_content
from decisions.engine import Recalled
from decisions.outcome import Decision
from nbo.redis_plan import Plan

router = APIRouter(prefix="/v1", tags=["blocks"])


@router.get("/users/{user_id}/blocks/{block}", summary="A rendered personalized block")
async def get_block(user_id: Annotated[str, Path(min_length=1, max_length=USER_ID_MAX)],
                    block: Block, options: Annotated[BlockOptions, Query()],
                    services: ServicesDep, _: Decide,
                    if_none_match: Annotated[str | None, Header()] = None) -> Response:
    return await one_block(services, user_id, block, options, if_none_match)


async def one_block(services: Services, user_id: str, block: Block, options: BlockOptions,
                    if_none_match: str | None) -> Response:
    """The answer of `GET /v1/users/{user_id}/blocks/{block}` to a valid, authorized request
    (the route above, and api/fast_path.py for most requests)."""
    return await services.run(_block(user_id, block, options, services, if_none_match))


def _block(user_id: str, block: Block, options: BlockOptions, services: Services,
           if_none_match: str | None) -> Plan[Response]:
    cache = BlockCache(services.settings.block_ttl_s)
    request, campaign, engine = (decision_request(user_id, options), options.campaign_id,
                                 services.engine)
    outcome: Decision | Recalled
    if campaign:
        outcome = yield from engine.recall_or_decide_plan(request,
                                                          cache.key(user_id, campaign, block))
    else:
        outcome = (yield from engine.decide_plan([request]))[0]
    stored = cache.stored(outcome.fields, time.time()) if isinstance(outcome, Recalled) else None
    if stored is None:
        decision = (outcome if isinstance(outcome, Decision)
                    else (yield from engine.decide_plan([request]))[0])
        count_decisions(services, [decision])
        content = block_content(decision, block)
        stored = cache.fresh(content)
        if campaign and not decision.degraded:
            try:
                stored = yield from cache.keep(user_id, campaign, block, content)
                if stored.content == content and block == "offer" and decision.offers:
                    # this fetch's block is the campaign's: what the user is sent
                    yield from services.feedback.shown_plan(user_id,
                                                            [decision.offers[0].offer_id])
            except redis.RedisError:
                services.metrics.redis_errors.inc()
    headers = {"ETag": stored.etag, "Cache-Control": (
        f"private, max-age={stored.ttl_s}" if stored.ttl_s else "no-store")}
    if if_none_match == stored.etag:
        return Response(status_code=304, headers=headers)
    if options.format == "json":
        return Response(stored.content, media_type="application/json", headers=headers)
    return Response(render_html(stored.content), media_type="text/html", headers=headers)
