"""The packed record read back, including records of a version packed with an older layout."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import orjson
from numpy.lib.recfunctions import recursive_fill_fields

from features.state import UserState
from features.store.layout import CHANNEL_BITS, CHANNEL_MASK, CONTACT_SLOTS, dtype_of, layout
from features.store.live import SESSION, overlay
from features.store.pack import pack, to_blobs
from features.store.unpack import unpack
from tests.conftest import SplitWorld


def _without(description: list[Any], name: str) -> list[Any]:
    """A layout description with every field called `name` left out, at any depth."""
    return [[field, _without(kind, name) if isinstance(kind, list) else kind, *shape]
            for field, kind, *shape in description if field != name]


def _no_lean(state: UserState) -> UserState:
    return replace(state, purchases=replace(state.purchases, price_lean=0),
                   category_purchases={category: replace(tally, price_lean=0) for category, tally
                                       in state.category_purchases.items()})


def test_records_of_an_older_layout_read_with_the_new_fields_empty(
        split_world: SplitWorld) -> None:
    user_ids, records, meta = pack(split_world.early, "now", 1)
    older = _without(orjson.loads(orjson.dumps(layout())), "price_lean")
    old_records = recursive_fill_fields(records, np.zeros(len(records), dtype_of(older)))
    old_meta = replace(meta, version="before", layout=older)
    assert old_records.dtype.itemsize < records.dtype.itemsize
    leaning = 0
    for user_id, blob, old_blob in list(zip(user_ids, to_blobs(records), to_blobs(old_records),
                                            strict=True))[:200]:
        state = unpack(blob, user_id, meta)
        assert unpack(old_blob, user_id, old_meta) == _no_lean(state)
        leaning += state.purchases.price_lean != 0
    assert leaning  # the new field was there to lose


def _before_cart(description: list[Any]) -> list[Any]:
    """The layout before the cart's categories, with sends as (day, channel, count)."""
    sends = ["contacts", [["day", "|u1"], ["channel", "|u1"], ["count", "|u1"]],
             [CONTACT_SLOTS]]
    return [sends if field == "sends" else [field, kind, *shape]
            for field, kind, *shape in description if field != "cart"]


def test_records_packed_before_the_cart_categories_keep_their_sends(
        split_world: SplitWorld) -> None:
    user_ids, records, meta = pack(split_world.early, "now", 1)
    older = dtype_of(_before_cart(orjson.loads(orjson.dumps(layout()))))
    old_records = recursive_fill_fields(records, np.zeros(len(records), older))
    slots = records["sends"]["slot"]
    old_records["contacts"]["day"] = slots >> CHANNEL_BITS
    old_records["contacts"]["channel"] = slots & CHANNEL_MASK
    old_records["contacts"]["count"] = records["sends"]["count"]
    old_meta = replace(meta, version="before cart", layout=_before_cart(layout()))
    carts = sends = 0
    for user_id, blob, old_blob in list(zip(user_ids, to_blobs(records), to_blobs(old_records),
                                            strict=True))[:300]:
        state = unpack(blob, user_id, meta)
        assert unpack(old_blob, user_id, old_meta) == replace(state, session=replace(
            state.session, cart_lines=(), cart_partial=state.session.cart_value > 0))
        carts += bool(state.session.cart_categories)
        sends += bool(state.contacts)
    assert carts and sends  # there was something to lose


def test_a_live_session_written_before_the_cart_categories_reads_with_none(
        split_world: SplitWorld) -> None:
    state = split_world.early.state(split_world.early.users["user_id"][0])
    assert state is not None
    older = orjson.dumps([["coffee"], 12.5, "", "", True]).decode()
    session = overlay(state, {SESSION: older}).session
    assert session.recent_categories == ("coffee",) and session.cart_value == 12.5
    assert session.cart_lines == () and session.app_installed is True
    assert session.cart_partial  # a cart with value whose lines were not kept
