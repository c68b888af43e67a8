"""A block's content from its decision, and the validator that caches it."""

from __future__ import annotations

from typing import Any

import orjson

from decisions.blocks import block_content, etag

DECISION: dict[str, Any] = {
    "user_id": "u1", "campaign_id": "spring", "decision_id": "d1",
    "offers": [{"offer_id": "o1"}, {"offer_id": "o2"}], "categories": ["coffee"],
    "brands": ["acme"], "items": ["i1"], "price_band": {"coffee": "mid"}, "holdout": False,
    "degraded": True}


def test_the_offer_block_carries_the_chosen_offer_and_recommendations_none() -> None:
    offer, recommendations = (orjson.loads(block_content(DECISION, block))
                              for block in ("offer", "recommendations"))
    assert offer["offer"] == {"offer_id": "o1"} and recommendations["offer"] is None
    for content in (offer, recommendations):
        assert content["categories"] == ["coffee"] and content["items"] == ["i1"]
        assert content["degraded"] is True  # an answer from defaults says so


def test_the_etag_changes_with_any_byte_of_the_content() -> None:
    content = block_content(DECISION, "offer")
    changed = block_content(DECISION | {"items": ["i2"]}, "offer")
    assert content[:40] == changed[:40] and etag(content) != etag(changed)
    assert etag(content) == etag(bytes(content))
