"""A user's state read back from a stored record of the layout
(features/store/layout.py), records of older layouts upgraded on the way."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from numpy.lib.recfunctions import recursive_fill_fields

from features.activity import ActivitySpan
from features.contacts import ALL_CHANNELS
from features.contract.schema import Channel
from features.profile import UserProfile
from features.purchases import PurchaseTally
from features.session import SessionContext
from features.state import UserState
from features.store.layout import (
    CHANNEL_BITS,
    CHANNEL_COUNTS,
    CHANNEL_MASK,
    CHANNELS,
    FIELDS,
    FOLDED_ID,
    RECORD,
    REFUSED_BITS,
    UNATTRIBUTED_ID,
    packed_with,
    slot,
)
from features.store.meta import VersionMeta


def _time(seconds: int) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds else None


def _decimal(stored: float) -> float:
    """The shortest decimal a stored float32 stands for: a cart of 19.99 reads 19.99 as it
    was, not 19.9899998, which an offer's minimum order of 19.99 would refuse."""
    return float(str(np.float32(stored)))


def _tally(lines: int, occasions: int, returns: int, amount: float, first: int,
           last: int, price_lean: int) -> PurchaseTally:
    return PurchaseTally(lines, occasions, returns, _decimal(amount), _time(first), _time(last),
                         price_lean)


def _upgraded(records: np.ndarray) -> np.ndarray:
    """Records of an older layout as RECORD: the fields it lacks read as zeros, a cart kept
    before its lines were is partial, and sends kept as (day, channel, count) before each
    (day, channel) took one byte are packed."""
    upgraded = recursive_fill_fields(records, np.zeros(len(records), RECORD))
    if "cart" not in (records.dtype.names or ()):  # a cart with value, its lines unknown
        upgraded["cart_partial"] = records["cart_value"] > 0
    if "contacts" in (records.dtype.names or ()):
        before = records["contacts"]
        upgraded["sends"]["slot"] = slot(before["day"], before["channel"])
        upgraded["sends"]["count"] = before["count"]
    return upgraded


def unpack(blob: bytes, user_id: str, meta: VersionMeta) -> UserState:
    """A user's state from a stored record (see the module's docstring for what is kept)."""
    stored_with = packed_with(meta)
    records = np.frombuffer(blob.ljust(stored_with.itemsize, b"\0"), stored_with)
    if stored_with is not RECORD:
        records = _upgraded(records)
    record = records[0]
    r: dict[str, Any] = {name: value.tolist() if isinstance(value, np.ndarray) else value
                         for name, value in zip(FIELDS, record.item(), strict=True)}
    categories = meta.categories
    counts: dict[str, dict[str, float]] = {
        name: {c: v for c, v in zip(CHANNELS, r[name], strict=True) if v}
        for name in CHANNEL_COUNTS}
    counts["price_affinity"] = {str(band): v for band, v in enumerate(r["price_affinity"]) if v}
    counts["category_affinity"] = {categories[i - 1]: v for i, v in r["category_affinity"] if i}
    counts["brand_affinity"] = {meta.brands[i - 1]: v for i, v in r["brand_affinity"] if i}
    counts["hourly_activity"] = {str(hour - 1): v for hour, v in r["active_hours"] if hour}
    counts["hourly_opens"] = {f"{CHANNELS[channel - 1]}:{hour}": q * scale
                              for channel, scale, hours in r["hourly_opens"] if channel
                              for hour, q in enumerate(np.asarray(hours).tolist()) if q}
    contacts: dict[tuple[str, date], int] = {}
    last_day = meta.anchor.date()
    for packed, sent in r["sends"]:
        if packed:
            day = last_day - timedelta(days=(packed >> CHANNEL_BITS) - 1)
            channel = packed & CHANNEL_MASK
            on = (CHANNELS if channel == FOLDED_ID else () if channel == UNATTRIBUTED_ID
                  else (CHANNELS[channel - 1],))
            for name in (*on, ALL_CHANNELS):
                contacts[(name, day)] = contacts.get((name, day), 0) + sent
    consent = r["consent"]
    return UserState(
        user_id=user_id,
        anchor=meta.anchor,
        profile=UserProfile(
            signup=_time(r["signup"]),
            country=r["country"].decode() or None,
            timezone=meta.timezones[r["timezone"] - 1] if r["timezone"] else None,
            consent=frozenset(Channel(c) for bit, c in enumerate(CHANNELS)
                              if consent >> bit & 1),
            refused=frozenset(c for c, bit in REFUSED_BITS.items() if consent >> bit & 1)),
        activity=ActivitySpan(_time(r["first_seen"]), _time(r["last_seen"]), r["events"]),
        purchases=_tally(*r["purchases"]),
        category_purchases={categories[i - 1]: _tally(*tally) for i, *tally in r["bought"]
                            if i},
        counts={name: values for name, values in counts.items() if values},
        contacts=contacts,
        last_contact=_time(r["last_contact"]),
        session=SessionContext(
            recent_categories=tuple(categories[i - 1] for i in r["recent"] if i),
            cart_value=_decimal(r["cart_value"]),
            cart_lines=tuple((categories[i - 1], items) for i, items in r["cart"] if i),
            cart_partial=bool(r["cart_partial"]),
            cart_updated=_time(r["cart_updated"]),
            checkout_started=_time(r["checkout_started"]),
            app_installed={1: True, 2: False}.get(r["app"])),
    )
