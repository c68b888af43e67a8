"""The packed record's layout: one user's batch features in ~340 bytes.

A numpy structured dtype (RECORD) fixes names, types and order; it is stored once per
version in VersionMeta, never per user. Timestamps are whole UTC seconds (0 = none),
categories, brands and zones are ids into the version's vocabularies (0 = none), and
long-tailed features keep their top: the TOP_* strongest categories and brands, the
ACTIVE_HOURS local hours with most shopping activity, the
BOUGHT categories bought last, the HOURLY channels with most opens (24 local hours,
quantized to 0..255 of the channel's peak) and the CONTACT_SLOTS latest (day, channel)
send counts within CONTACT_DAYS of the cut-off, each (day, channel) in one byte (`slot`;
a user with more keeps one slot less and folds the rest into it, kept.py `contact_slots`).
The blocks most often empty come last (a third of users has no opens, most have one
channel with opens), so trailing zero bytes, cut before storing, cost nothing.

What is kept of a batch: features/store/kept.py; packing it: pack.py (`pack`, and
`to_blobs`, which cuts the zeros); reading a record back: unpack.py."""

from __future__ import annotations

from typing import Any

import numpy as np

from features.contacts import CONTACT_DAYS
from features.contract.schema import Channel
from features.profile import REFUSABLE
from features.session import CART_CATEGORIES, RECENT_CATEGORIES
from features.store.meta import VersionMeta

CHANNELS = tuple(channel.value for channel in Channel)
CHANNEL_COUNTS = ("channel_sends", "channel_opens", "channel_clicks", "channel_conversions")
PRICE_BANDS = 3
TOP_CATEGORIES, TOP_BRANDS, BOUGHT, HOURLY, CONTACT_SLOTS = 6, 4, 3, 2, 14
ACTIVE_HOURS = 3
CHANNEL_BITS = 3  # a send's slot: (days before the cut-off + 1) << CHANNEL_BITS | channel id
CHANNEL_MASK = (1 << CHANNEL_BITS) - 1
UNATTRIBUTED = ""  # in `kept`'s sends: messages sent on no channel the event named
UNATTRIBUTED_ID = CHANNEL_MASK  # their channel id in a slot: they count on "*" only
SLOT_MOST = 255  # sends one slot counts
FOLDED = "+"  # in `kept`'s slots: the sends of a user's buckets beyond those kept exact
FOLDED_ID = 0  # their channel id in a slot (its day makes the byte non-zero): they count
# on every channel and "*" (kept.py, `contact_slots`)
assert len(CHANNELS) < UNATTRIBUTED_ID and CONTACT_DAYS < 1 << (8 - CHANNEL_BITS)
REFUSED_BITS = {channel: len(CHANNELS) + i for i, channel in enumerate(REFUSABLE)}
"""The consent byte's bits past the channels' (explicit yes): in-app or web refused."""
assert max(REFUSED_BITS.values()) < 8
F16_MAX = float(np.finfo(np.float16).max)
MAX_VOCABULARY = 2**16 - 1  # ids are uint16, 0 meaning none

_TOP = [("id", "<u2"), ("total", "<f4")]
_TALLY = [("lines", "<u2"), ("occasions", "<u2"), ("returns", "<u2"), ("amount", "<f4"),
          ("first", "<u4"), ("last", "<u4"), ("price_lean", "i1")]  # lean kept within +-127
RECORD = np.dtype([
    ("first_seen", "<u4"), ("last_seen", "<u4"), ("events", "<u4"),
    ("signup", "<u4"), ("timezone", "<u2"), ("country", "S2"), ("consent", "u1"),
    ("app", "u1"),  # 0 unknown, 1 installed, 2 uninstalled
    ("purchases", _TALLY),
    ("last_contact", "<u4"),
    ("recent", "<u2", (RECENT_CATEGORIES,)),
    ("cart", [("id", "<u2"), ("items", "u1")], (CART_CATEGORIES,)),
    ("cart_value", "<f4"), ("cart_updated", "<u4"),
    ("checkout_started", "<u4"),
    *((name, "<f2", (len(CHANNELS),)) for name in CHANNEL_COUNTS),
    ("price_affinity", "<f2", (PRICE_BANDS,)),
    ("category_affinity", _TOP, (TOP_CATEGORIES,)),
    ("brand_affinity", _TOP, (TOP_BRANDS,)),
    ("active_hours", [("hour", "u1"), ("total", "<f2")], (ACTIVE_HOURS,)),  # hour + 1
    ("bought", [("id", "<u2"), *_TALLY], (BOUGHT,)),
    ("sends", [("slot", "u1"), ("count", "u1")], (CONTACT_SLOTS,)),
    ("hourly_opens", [("channel", "u1"), ("scale", "<f2"), ("hours", "u1", (24,))], (HOURLY,)),
    ("cart_partial", "u1"),  # last: rarely set, so rarely stored
])

FIELDS: tuple[str, ...] = RECORD.names or ()


def layout() -> list[Any]:
    """RECORD as JSON-able data (numpy's own description)."""
    return [list(field) for field in RECORD.descr]


def dtype_of(description: list[Any]) -> np.dtype:
    """The dtype a `layout()` read back from JSON describes."""
    def field(name: str, kind: str | list[Any], *shape: list[int]) -> tuple[Any, ...]:
        return (name, dtype_of(kind) if isinstance(kind, list) else kind,
                *(tuple(dims) for dims in shape))
    return np.dtype([field(*spec) for spec in description])


_PACKED_WITH: dict[str, np.dtype] = {}  # version -> the dtype of its records


def packed_with(meta: VersionMeta) -> np.dtype:
    """RECORD, or the older layout `meta`'s version was published with."""
    found = _PACKED_WITH.get(meta.version)
    if found is None:
        stored = dtype_of(meta.layout)
        found = _PACKED_WITH[meta.version] = RECORD if stored == RECORD else stored
    return found


def slot(day: np.ndarray, channel: np.ndarray) -> np.ndarray:
    """A send's (day, channel) in one byte: day 1 is the cut-off's, channel an id (1..)."""
    return np.asarray(day << CHANNEL_BITS | channel, dtype=np.uint8)
