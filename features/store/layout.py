"""The packed record: one user's batch features in ~340 bytes, and back.

A numpy structured dtype (RECORD) fixes names, types and order; it is stored once per
version in VersionMeta, never per user. Timestamps are whole UTC seconds (0 = none),
categories, brands and zones are ids into the version's vocabularies (0 = none), and
long-tailed features keep their top: the TOP_* strongest categories and brands, the
ACTIVE_HOURS local hours with most shopping activity, the
BOUGHT categories bought last, the HOURLY channels with most opens (24 local hours,
quantized to 0..255 of the channel's peak) and the CONTACT_SLOTS latest (day, channel)
send counts within CONTACT_DAYS of the cut-off, each (day, channel) in one byte (`_slot`).
The blocks most often empty come last (a third of users has no opens, most have one
channel with opens), so trailing zero bytes, cut before storing, cost nothing
(`to_blobs`, `unpack`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
from numpy.lib.recfunctions import recursive_fill_fields

from features.activity import ActivitySpan
from features.contacts import ALL_CHANNELS
from features.contract.schema import Channel
from features.pipeline import PURCHASE_PREFIX, BatchFeatures
from features.profile import UserProfile
from features.purchases import PurchaseTally
from features.session import CART_CATEGORIES, RECENT_CATEGORIES, SessionContext
from features.state import UserState
from features.store.meta import VersionMeta
from nbo.errors import DataContractError

CHANNELS = tuple(channel.value for channel in Channel)
CHANNEL_COUNTS = ("channel_sends", "channel_opens", "channel_clicks", "channel_conversions")
PRICE_BANDS = 3
TOP_CATEGORIES, TOP_BRANDS, BOUGHT, HOURLY, CONTACT_SLOTS = 6, 4, 3, 2, 14
ACTIVE_HOURS = 3
CONTACT_DAYS = 31
CHANNEL_BITS = 3  # a send's slot: (days before the cut-off + 1) << CHANNEL_BITS | channel id
CHANNEL_MASK = (1 << CHANNEL_BITS) - 1
UNATTRIBUTED = ""  # in `kept`'s sends: messages sent on no channel the event named
UNATTRIBUTED_ID = CHANNEL_MASK  # their channel id in a slot: they count on "*" only
assert len(CHANNELS) < UNATTRIBUTED_ID and CONTACT_DAYS < 1 << (8 - CHANNEL_BITS)
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


def _packed_with(meta: VersionMeta) -> np.dtype:
    """RECORD, or the older layout `meta`'s version was published with."""
    found = _PACKED_WITH.get(meta.version)
    if found is None:
        stored = dtype_of(meta.layout)
        found = _PACKED_WITH[meta.version] = RECORD if stored == RECORD else stored
    return found


def _seconds(column: str) -> pl.Expr:
    return pl.col(column).dt.epoch("s").fill_null(0).clip(0, 2**32 - 1)


def _ids(values: pl.Expr, vocabulary: Sequence[str]) -> pl.Expr:
    return values.replace_strict(list(vocabulary), list(range(1, len(vocabulary) + 1)),
                                 default=0, return_dtype=pl.UInt16)


def _indexed(frame: pl.DataFrame, users: pl.DataFrame) -> pl.DataFrame:
    return frame.join(users, on="user_id", how="inner")


def _ranked(frame: pl.DataFrame, by: str, limit: int) -> pl.DataFrame:
    """The `limit` rows with the largest `by` per user (`row`), ranked from 0."""
    ordered = frame.sort(["row", by], descending=[False, True])
    rows = ordered["row"].to_numpy()
    starts = np.flatnonzero(np.diff(rows, prepend=-1))  # where each user's run begins
    lengths = np.diff(starts, append=len(rows))
    rank = np.arange(len(rows)) - np.repeat(starts, lengths)
    return ordered.with_columns(rank=pl.Series(rank)).filter(pl.col("rank") < limit)


def _top(frame: pl.DataFrame, by: str, limit: int) -> pl.DataFrame:
    """The `limit` rows with the largest `by` per user (a row without one last: a category
    only returned to, never bought, has no last purchase); ties go to the smaller values of
    the other columns, so the same batch always keeps the same rows."""
    rest = [name for name in frame.columns if name not in ("user_id", by)]
    ordered = frame.sort(["user_id", by, *rest], descending=[False, True, *[False] * len(rest)],
                         nulls_last=True)
    return ordered.group_by("user_id", maintain_order=True).head(limit).select(frame.columns)


def kept(batch: BatchFeatures) -> BatchFeatures:
    """What the packed record keeps of `batch` (see the module's docstring): models that
    learn from `kept(batch)` learn from what the store serves (to its numbers' precision)."""
    counts = dict(batch.counts)
    for name, limit in (("category_affinity", TOP_CATEGORIES), ("brand_affinity", TOP_BRANDS),
                        ("hourly_activity", ACTIVE_HOURS)):
        counts[name] = _top(counts[name], "total", limit)
    opens = counts["hourly_opens"].with_columns(
        channel=pl.col("key").str.split(":").list.first())
    channels = _top(opens.group_by("user_id", "channel").agg(pl.col("total").sum()), "total",
                    HOURLY)
    counts["hourly_opens"] = opens.join(channels.select("user_id", "channel"),
                                        on=["user_id", "channel"]).drop("channel")
    last_day = batch.anchor.date()
    recent = batch.contacts.filter(
        (pl.lit(last_day) - pl.col("day")).dt.total_days().is_between(0, CONTACT_DAYS - 1))
    sends = _top(pl.concat([recent.filter(pl.col("channel") != ALL_CHANNELS),
                            _unattributed(recent)]), "day", CONTACT_SLOTS)
    every_channel = sends.group_by("user_id", "day", maintain_order=True).agg(
        pl.col("sent").sum()).select("user_id", channel=pl.lit(ALL_CHANNELS), day="day",
                                     sent="sent")
    return replace(batch, counts=counts,
                   category_purchases=_top(batch.category_purchases, "last", BOUGHT),
                   contacts=pl.concat([sends.filter(pl.col("channel") != UNATTRIBUTED),
                                       every_channel.cast(sends.schema)]))


def _unattributed(contacts: pl.DataFrame) -> pl.DataFrame:
    """Each day's messages sent on no named channel: the all-channel count less the named
    channels' (as rows of channel UNATTRIBUTED)."""
    named = contacts.filter(pl.col("channel") != ALL_CHANNELS).group_by("user_id", "day").agg(
        named=pl.col("sent").sum())
    return (contacts.filter(pl.col("channel") == ALL_CHANNELS)
            .join(named, on=["user_id", "day"], how="left")
            .with_columns(channel=pl.lit(UNATTRIBUTED),
                          sent=pl.col("sent") - pl.col("named").fill_null(0))
            .filter(pl.col("sent") > 0)
            .select(contacts.columns).cast(contacts.schema))


def pack(batch: BatchFeatures, version: str, buckets: int) -> tuple[list[str], np.ndarray,
                                                                    VersionMeta]:
    """Every user's record, in `batch.users` order, and the version's metadata."""
    users = batch.users
    index = users.select("user_id", row=pl.int_range(pl.len(), dtype=pl.Int64))
    categories = tuple(sorted(set(batch.counts["category_affinity"]["key"].unique())
                              | set(batch.category_purchases["category"].unique())
                              | set(batch.bands.bounds)))
    brands = tuple(sorted(batch.counts["brand_affinity"]["key"].unique()))
    zones = tuple(sorted(users["timezone"].drop_nulls().unique().to_list()))
    for name, vocabulary in (("categories", categories), ("brands", brands)):
        if len(vocabulary) > MAX_VOCABULARY:
            raise DataContractError(
                f"{len(vocabulary):,} {name}: the packed record holds at most "
                f"{MAX_VOCABULARY:,}; map rare ones to a shared value before publishing")
    served = kept(batch)  # the vocabularies above stay the whole batch's
    records = np.zeros(users.height, RECORD)
    _fill_users(records, users, zones, categories)
    for name in CHANNEL_COUNTS:
        rows = _indexed(served.counts[name], index).with_columns(
            col=_ids(pl.col("key"), CHANNELS).cast(pl.Int64) - 1)
        records[name][rows["row"], rows["col"]] = rows["total"].clip(-F16_MAX, F16_MAX)
    bands = _indexed(served.counts["price_affinity"], index)
    records["price_affinity"][bands["row"], bands["key"].cast(pl.Int64)] = bands["total"].clip(
        -F16_MAX, F16_MAX)  # returns outweighing purchases leave a total below 0, as in batch
    for name, vocabulary, limit in (("category_affinity", categories, TOP_CATEGORIES),
                                    ("brand_affinity", brands, TOP_BRANDS)):
        top = _ranked(_indexed(served.counts[name], index), "total", limit)
        block = records[name]
        block["id"][top["row"], top["rank"]] = top.select(
            _ids(pl.col("key"), vocabulary)).to_series()
        block["total"][top["row"], top["rank"]] = top["total"]
    active = _ranked(_indexed(served.counts["hourly_activity"], index), "total", ACTIVE_HOURS)
    records["active_hours"]["hour"][active["row"], active["rank"]] = active["key"].cast(
        pl.Int64) + 1
    records["active_hours"]["total"][active["row"], active["rank"]] = active["total"].clip(
        -F16_MAX, F16_MAX)
    _fill_bought(records, _indexed(served.category_purchases, index), categories)
    _fill_hourly(records, _indexed(served.counts["hourly_opens"], index))
    _fill_contacts(records, _indexed(served.contacts, index), batch.anchor)
    meta = VersionMeta(version=version, anchor=batch.anchor, buckets=buckets,
                       users=users.height, layout=layout(), categories=categories,
                       brands=brands, timezones=zones, bands=batch.bands,
                       cycles=dict(batch.cycles),
                       engagement={k: dict(v) for k, v in batch.engagement.items()})
    return users["user_id"].to_list(), records, meta


def _fill_users(records: np.ndarray, users: pl.DataFrame, zones: Sequence[str],
                categories: Sequence[str]) -> None:
    consent = sum((pl.col(f"consent_{channel}").fill_null(False).cast(pl.UInt8) * (1 << bit))
                  for bit, channel in enumerate(CHANNELS))
    app = pl.col("app_installed").replace_strict({True: 1, False: 2}, default=0,
                                                 return_dtype=pl.UInt8)
    scalars = users.select(
        first_seen=_seconds("first_seen"), last_seen=_seconds("last_seen"),
        events=pl.col("events"), signup=_seconds("signup_ts"),
        timezone=_ids(pl.col("timezone"), zones), country=pl.col("country").fill_null(""),
        consent=consent, app=app, last_contact=_seconds("last_contact"),
        cart_value=pl.col("cart_value"), cart_partial=pl.col("cart_partial"),
        cart_updated=_seconds("cart_updated"),
        checkout_started=_seconds("checkout_started"))
    for name in scalars.columns:
        values = scalars[name].to_numpy()
        records[name] = values.astype("S2") if name == "country" else values
    _fill_tally(records["purchases"], users.rename(
        {PURCHASE_PREFIX + name: name for name in PurchaseTally.__dataclass_fields__}))
    recent = _listed(users, "recent_categories")
    records["recent"][recent["row"], recent["rank"]] = recent.select(
        _ids(pl.col("recent_categories"), categories)).to_series()
    lines = _listed(users, "cart_lines").unnest("cart_lines")
    records["cart"]["id"][lines["row"], lines["rank"]] = lines.select(
        _ids(pl.col("category"), categories)).to_series()
    records["cart"]["items"][lines["row"], lines["rank"]] = lines["items"].clip(0, 255)


def _listed(users: pl.DataFrame, column: str) -> pl.DataFrame:
    """Each user's (row) list in `column`, one element a row, ranked from 0."""
    return (users.select("user_id", column)
            .with_columns(row=pl.int_range(pl.len(), dtype=pl.Int64))
            .explode(column).drop_nulls(column)
            .with_columns(rank=pl.int_range(pl.len()).over("user_id")))


def _fill_tally(block: np.ndarray, tallies: pl.DataFrame,
                at: tuple[pl.Series, pl.Series] | None = None) -> None:
    where: Any = slice(None) if at is None else at
    for name in ("lines", "occasions", "returns"):
        block[name][where] = tallies[name].fill_null(0).clip(0, 2**16 - 1)
    block["amount"][where] = tallies["amount"].fill_null(0.0)
    block["price_lean"][where] = tallies["price_lean"].fill_null(0).clip(-127, 127)
    for name in ("first", "last"):
        block[name][where] = tallies.select(_seconds(name)).to_series()


def _fill_bought(records: np.ndarray, tallies: pl.DataFrame,
                 categories: Sequence[str]) -> None:
    latest = _ranked(tallies.with_columns(_seconds("last").alias("__last")), "__last", BOUGHT)
    block = records["bought"]
    block["id"][latest["row"], latest["rank"]] = latest.select(
        _ids(pl.col("category"), categories)).to_series()
    _fill_tally(block, latest, (latest["row"], latest["rank"]))


def _fill_hourly(records: np.ndarray, opens: pl.DataFrame) -> None:
    split = opens.with_columns(pl.col("key").str.split_exact(":", 1).struct.rename_fields(
        ["channel", "hour"]).struct.unnest()).with_columns(pl.col("hour").cast(pl.Int64))
    channels = _ranked(split.group_by("row", "channel").agg(
        total=pl.col("total").sum(), peak=pl.col("total").max()), "total", HOURLY)
    cells = split.join(channels.select("row", "channel", "rank", "peak"),
                       on=["row", "channel"], how="inner").with_columns(
        scale=pl.max_horizontal(pl.col("peak"), 1e-9) / 255)
    block = records["hourly_opens"]
    block["channel"][channels["row"], channels["rank"]] = channels.select(
        _ids(pl.col("channel"), CHANNELS)).to_series()
    block["scale"][cells["row"], cells["rank"]] = cells["scale"]
    block["hours"][cells["row"], cells["rank"], cells["hour"]] = cells.select(
        (pl.col("total") / pl.col("scale")).round().clip(0, 255)).to_series()


def _fill_contacts(records: np.ndarray, contacts: pl.DataFrame, anchor: datetime) -> None:
    """Per-channel buckets of `kept` contacts, and those sent on no named channel: the
    all-channel bucket is their sum (see `unpack`)."""
    recent = pl.concat([contacts.filter(pl.col("channel") != ALL_CHANNELS),
                        _unattributed(contacts)]).with_columns(
        offset=(pl.lit(anchor.date()) - pl.col("day")).dt.total_days())
    latest = _ranked(recent.with_columns(__recency=-pl.col("offset")), "__recency",
                     CONTACT_SLOTS)
    channel = (pl.when(pl.col("channel") == UNATTRIBUTED).then(UNATTRIBUTED_ID)
               .otherwise(_ids(pl.col("channel"), CHANNELS)))
    block = records["sends"]
    block["slot"][latest["row"], latest["rank"]] = _slot(
        latest["offset"].to_numpy() + 1, latest.select(channel).to_series().to_numpy())
    block["count"][latest["row"], latest["rank"]] = latest["sent"].clip(0, 255)


def _slot(day: np.ndarray, channel: np.ndarray) -> np.ndarray:
    """A send's (day, channel) in one byte: day 1 is the cut-off's, channel an id (1..)."""
    return np.asarray(day << CHANNEL_BITS | channel, dtype=np.uint8)


def to_blobs(records: np.ndarray) -> list[bytes]:
    """Each record's bytes without trailing zeros."""
    raw = records.tobytes()
    size = records.dtype.itemsize
    return [raw[start:start + size].rstrip(b"\0") for start in range(0, len(raw), size)]


def _time(seconds: int) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds else None


def _tally(lines: int, occasions: int, returns: int, amount: float, first: int,
           last: int, price_lean: int) -> PurchaseTally:
    return PurchaseTally(lines, occasions, returns, amount, _time(first), _time(last),
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
        upgraded["sends"]["slot"] = _slot(before["day"], before["channel"])
        upgraded["sends"]["count"] = before["count"]
    return upgraded


def unpack(blob: bytes, user_id: str, meta: VersionMeta) -> UserState:
    """A user's state from a stored record (see the module's docstring for what is kept)."""
    packed_with = _packed_with(meta)
    records = np.frombuffer(blob.ljust(packed_with.itemsize, b"\0"), packed_with)
    if packed_with is not RECORD:
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
    for slot, sent in r["sends"]:
        if slot:
            day = last_day - timedelta(days=(slot >> CHANNEL_BITS) - 1)
            if slot & CHANNEL_MASK != UNATTRIBUTED_ID:
                contacts[(CHANNELS[(slot & CHANNEL_MASK) - 1], day)] = sent
            contacts[(ALL_CHANNELS, day)] = contacts.get((ALL_CHANNELS, day), 0) + sent
    consent = r["consent"]
    return UserState(
        user_id=user_id,
        anchor=meta.anchor,
        profile=UserProfile(
            signup=_time(r["signup"]),
            country=r["country"].decode() or None,
            timezone=meta.timezones[r["timezone"] - 1] if r["timezone"] else None,
            consent=frozenset(Channel(c) for bit, c in enumerate(CHANNELS)
                              if consent >> bit & 1)),
        activity=ActivitySpan(_time(r["first_seen"]), _time(r["last_seen"]), r["events"]),
        purchases=_tally(*r["purchases"]),
        category_purchases={categories[i - 1]: _tally(*tally) for i, *tally in r["bought"]
                            if i},
        counts={name: values for name, values in counts.items() if values},
        contacts=contacts,
        last_contact=_time(r["last_contact"]),
        session=SessionContext(
            recent_categories=tuple(categories[i - 1] for i in r["recent"] if i),
            cart_value=r["cart_value"],
            cart_lines=tuple((categories[i - 1], items) for i, items in r["cart"] if i),
            cart_partial=bool(r["cart_partial"]),
            cart_updated=_time(r["cart_updated"]),
            checkout_started=_time(r["checkout_started"]),
            app_installed={1: True, 2: False}.get(r["app"])),
    )
