"""Personalized content blocks for email builders: what a block shows, remembered per
(user, campaign, block) so every fetch for one campaign gets the same content.

The first fetch decides and stores the block with HSETNX, so two concurrent first
fetches still agree on one content (the loser's decision is dropped); the stored block
expires after the configured time. The hash keeps its expiry time next to the content,
so a later fetch finds both with the decision's own read (DecisionEngine.recall_or_decide_plan).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Literal

import orjson

from decisions import keys
from decisions.outcome import Decision
from nbo.redis_plan import Plan, Step

BLOCKS = ("offer", "recommendations")
CONTENT, EXPIRES = b"content", b"expires"  # the stored hash's fields
Block = Literal["offer", "recommendations"]


@dataclass(frozen=True)
class StoredBlock:
    content: bytes  # the block's JSON (what `format=json` returns, and HTML is rendered from)
    etag: str
    ttl_s: int  # seconds it stays remembered (the cache lifetime callers may use)


def block_content(decision: Decision, block: Block) -> bytes:
    """The block's JSON: the chosen offer (for `offer`) and the recommendations."""
    offer = asdict(decision.offers[0]) if decision.offers and block == "offer" else None
    return orjson.dumps({
        "block": block, "user_id": decision.user_id, "campaign_id": decision.campaign_id,
        "decision_id": decision.decision_id, "offer": offer,
        "categories": decision.categories, "brands": decision.brands,
        "items": decision.items,
        "price_band": decision.price_band, "holdout": decision.holdout,
        "degraded": decision.degraded})


def _etag(content: bytes) -> str:
    return '"' + hashlib.sha256(content).hexdigest()[:20] + '"'


class BlockCache:
    def __init__(self, ttl_s: int) -> None:
        self._ttl_s = ttl_s

    @staticmethod
    def key(user_id: str, campaign_id: str, block: str) -> str:
        return keys.block(user_id, campaign_id, block)

    @staticmethod
    def stored(fields: Mapping[bytes, bytes], now: float) -> StoredBlock | None:
        """The block in a stored hash's fields; None for a hash `keep` did not write."""
        content, expires = fields.get(CONTENT), fields.get(EXPIRES)
        if content is None or expires is None or not expires.isdigit():
            return None
        return StoredBlock(content, _etag(content), max(int(expires) - int(now), 0))

    def keep(self, user_id: str, campaign_id: str, block: str,
             content: bytes) -> Plan[StoredBlock]:
        """Store the block unless another fetch stored one first; the one stored wins."""
        key = self.key(user_id, campaign_id, block)
        now = time.time()
        replies = yield Step([("HSETNX", key, CONTENT, content),
                              ("HSETNX", key, EXPIRES, int(now) + self._ttl_s),
                              ("EXPIRE", key, self._ttl_s),  # only on a miss; EXPIRE NX: Redis 7
                              ("HGETALL", key)], transaction=True)
        return self.stored(replies[-1], now) or self.fresh(content)

    @staticmethod
    def fresh(content: bytes) -> StoredBlock:
        """A block that is not remembered (no campaign, or Redis is down)."""
        return StoredBlock(content, _etag(content), 0)
