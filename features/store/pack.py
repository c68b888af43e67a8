"""Packing a batch into records of the layout (features/store/layout.py), one a user,
with the version's metadata."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from features.pipeline import PURCHASE_PREFIX, BatchFeatures
from features.purchases import PurchaseTally
from features.store.kept import contact_slots, kept
from features.store.layout import (
    ACTIVE_HOURS,
    BOUGHT,
    CHANNEL_COUNTS,
    CHANNELS,
    CONTACT_SLOTS,
    F16_MAX,
    FOLDED,
    FOLDED_ID,
    HOURLY,
    MAX_VOCABULARY,
    RECORD,
    REFUSED_BITS,
    TOP_BRANDS,
    TOP_CATEGORIES,
    UNATTRIBUTED,
    UNATTRIBUTED_ID,
    layout,
    slot,
)
from features.store.meta import VersionMeta
from nbo.errors import DataContractError


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
    _fill_contacts(records, _indexed(contact_slots(batch.contacts, batch.anchor.date()),
                                     index), batch.anchor)
    meta = VersionMeta(version=version, anchor=batch.anchor, buckets=buckets,
                       users=users.height, layout=layout(), categories=categories,
                       brands=brands, timezones=zones, bands=batch.bands,
                       cycles=dict(batch.cycles),
                       engagement={k: dict(v) for k, v in batch.engagement.items()})
    return users["user_id"].to_list(), records, meta


def _fill_users(records: np.ndarray, users: pl.DataFrame, zones: Sequence[str],
                categories: Sequence[str]) -> None:
    consent = sum((pl.col(f"consent_{channel}").fill_null(False).cast(pl.UInt8) * (1 << bit))
                  for bit, channel in enumerate(CHANNELS)) + sum(
        (pl.col(f"consent_{channel.value}").not_().fill_null(False).cast(pl.UInt8) * (1 << bit))
        for channel, bit in REFUSED_BITS.items())
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


def _fill_contacts(records: np.ndarray, slots: pl.DataFrame, anchor: datetime) -> None:
    """The send buckets `contact_slots` keeps, each in its slot (see `unpack`)."""
    offsets = slots.with_columns(offset=(pl.lit(anchor.date()) - pl.col("day")).dt.total_days())
    latest = _ranked(offsets.with_columns(__recency=-pl.col("offset")), "__recency",
                     CONTACT_SLOTS)
    channel = (pl.when(pl.col("channel") == UNATTRIBUTED).then(UNATTRIBUTED_ID)
               .when(pl.col("channel") == FOLDED).then(FOLDED_ID)
               .otherwise(_ids(pl.col("channel"), CHANNELS)))
    block = records["sends"]
    block["slot"][latest["row"], latest["rank"]] = slot(
        latest["offset"].to_numpy() + 1, latest.select(channel).to_series().to_numpy())
    block["count"][latest["row"], latest["rank"]] = latest["sent"]


def to_blobs(records: np.ndarray) -> list[bytes]:
    """Each record's bytes without trailing zeros."""
    raw = records.tobytes()
    size = records.dtype.itemsize
    return [raw[start:start + size].rstrip(b"\0") for start in range(0, len(raw), size)]
