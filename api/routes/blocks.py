"""GET /v1/users/{user_id}/blocks/{block}: a personalized block for email builders,
the same content for every fetch of one campaign, cacheable (ETag, Cache-Control)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import orjson
import redis
from fastapi import APIRouter, Header, Query, Response

from api.auth import Decide
from api.rendering import render_html
from api.routes.decisions import cache_validators, count_answers, decision_request
from api.schemas import BlockOptions, IdPath, cached_responses
from api.services import Services, ServicesDep
from decisions.blocks import Block, block_content
from nbo.redis_plan import Plan

router = APIRouter(prefix="/v1", tags=["blocks"])


@router.get("/users/{user_id:id}/blocks/{block}", summary="A rendered personalized block",
            responses=cached_responses({"content": {"text/html": {}, "application/json": {}}},
                                       "HTML, or JSON with format=json"))
async def get_block(user_id: IdPath,
                    block: Block, options: Annotated[BlockOptions, Query()],
                    services: ServicesDep, _: Decide,
                    if_none_match: Annotated[list[str] | None, Header()] = None,
                    ) -> Response:
    return await one_block(services, user_id, block, options, if_none_match or ())


async def one_block(services: Services, user_id: str, block: Block, options: BlockOptions,
                    if_none_match: Sequence[str]) -> Response:
    """The answer of `GET /v1/users/{user_id}/blocks/{block}` to a valid, authorized request
    (the route above, and api/fast_path.py for most requests)."""
    return await services.run(_block(user_id, block, options, services, if_none_match))


def _block(user_id: str, block: Block, options: BlockOptions, services: Services,
           if_none_match: Sequence[str]) -> Plan[Response]:
    answer = (yield from services.campaigns.plan([decision_request(user_id, options)]))[0]
    count_answers(services, [answer])
    decision = orjson.loads(answer.body)
    campaign, offers = options.campaign_id, decision["offers"]
    if campaign and answer.ttl_s and block == "offer" and offers and not answer.shown:
        try:  # what the user is sent: the first render of the campaign's offer block
            yield from services.campaigns.shown_plan(user_id, campaign, decision["decision_id"],
                                                     offers[0]["offer_id"])
        except redis.RedisError:
            services.metrics.redis_errors.inc()
    content = block_content(decision, block)
    headers, unchanged = cache_validators(content, answer.ttl_s, if_none_match)
    if unchanged:
        return Response(status_code=304, headers=headers)
    if options.format == "json":
        return Response(content, media_type="application/json", headers=headers)
    return Response(render_html(content), media_type="text/html", headers=headers)
