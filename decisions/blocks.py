"""Personalized content blocks for email builders: what a block shows of a decision.

A block with a campaign renders the campaign's remembered decision (decisions/campaigns.py),
so every fetch of either block for one (user, campaign) shows the same content.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Literal

import orjson

BLOCKS = ("offer", "recommendations")
Block = Literal["offer", "recommendations"]


def block_content(decision: Mapping[str, Any], block: Block) -> bytes:
    """The block's JSON, from the decision's: the chosen offer (for `offer`) and the
    recommendations."""
    offers = decision["offers"]
    return orjson.dumps({
        "block": block, "user_id": decision["user_id"], "campaign_id": decision["campaign_id"],
        "decision_id": decision["decision_id"],
        "offer": offers[0] if offers and block == "offer" else None,
        "categories": decision["categories"], "brands": decision["brands"],
        "items": decision["items"], "price_band": decision["price_band"],
        "holdout": decision["holdout"], "degraded": decision["degraded"]})


def etag(content: bytes) -> str:
    """A strong validator of the content (If-None-Match)."""
    return '"' + hashlib.sha256(content).hexdigest()[:20] + '"'
