"""What the packed record (features/store/layout.py) keeps of a batch: the top of each
long-tailed feature. Models that learn from `kept(batch)` learn from what the store serves."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import polars as pl

from features.contacts import ALL_CHANNELS, CONTACT_DAYS
from features.pipeline import BatchFeatures
from features.store.layout import (
    ACTIVE_HOURS,
    BOUGHT,
    CHANNELS,
    CONTACT_SLOTS,
    FOLDED,
    HOURLY,
    SLOT_MOST,
    TOP_BRANDS,
    TOP_CATEGORIES,
    UNATTRIBUTED,
)


def _top(frame: pl.DataFrame, by: str, limit: int) -> pl.DataFrame:
    """The `limit` rows with the largest `by` per user (a row without one last: a category
    only returned to, never bought, has no last purchase); ties go to the smaller values of
    the other columns, so the same batch always keeps the same rows."""
    rest = [name for name in frame.columns if name not in ("user_id", by)]
    ordered = frame.sort(["user_id", by, *rest], descending=[False, True, *[False] * len(rest)],
                         nulls_last=True)
    return ordered.group_by("user_id", maintain_order=True).head(limit).select(frame.columns)


def kept(batch: BatchFeatures) -> BatchFeatures:
    """What the packed record keeps of `batch` (layout.py's docstring says what): models that
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
    slots = contact_slots(batch.contacts, batch.anchor.date())
    named = slots.filter(~pl.col("channel").is_in([UNATTRIBUTED, FOLDED]))
    on_every = (slots.filter(pl.col("channel") == FOLDED).drop("channel")
                .join(pl.DataFrame({"channel": CHANNELS}), how="cross").select(slots.columns))
    per_channel = pl.concat([named, on_every]).group_by(
        "user_id", "channel", "day", maintain_order=True).agg(pl.col("sent").sum())
    every_channel = slots.group_by("user_id", "day", maintain_order=True).agg(
        pl.col("sent").sum()).select("user_id", channel=pl.lit(ALL_CHANNELS), day="day",
                                     sent="sent")
    return replace(batch, counts=counts,
                   category_purchases=_top(batch.category_purchases, "last", BOUGHT),
                   contacts=pl.concat([per_channel.select(slots.columns).cast(slots.schema),
                                       every_channel.cast(slots.schema)]))


def contact_slots(contacts: pl.DataFrame, last_day: date) -> pl.DataFrame:
    """The (day, channel) send buckets the record keeps, as (user_id, channel, day, sent):
    those within CONTACT_DAYS of `last_day`, each of a named channel or UNATTRIBUTED (sent
    on no channel the event named), the latest first, at most SLOT_MOST sends each. A user
    with more than CONTACT_SLOTS buckets keeps the latest exact and folds the others into
    as few buckets of channel FOLDED, dated the latest day folded, as their sends fill:
    caps count those sends on every channel and no earlier than they were sent, so a cap
    may hold a message back early, never let one through it should stop (dropped, they
    were not counted at all)."""
    recent = contacts.filter(
        (pl.lit(last_day) - pl.col("day")).dt.total_days().is_between(0, CONTACT_DAYS - 1))
    buckets = pl.concat([recent.filter(pl.col("channel") != ALL_CHANNELS),
                         unattributed(recent)])
    ranked = buckets.sort(["user_id", "day", "channel"],
                          descending=[False, True, False]).with_columns(
        rank=pl.int_range(pl.len()).over("user_id"), buckets=pl.len().over("user_id"))
    fitting = ranked.filter(pl.col("buckets") <= CONTACT_SLOTS)
    over = ranked.filter(pl.col("buckets") > CONTACT_SLOTS).with_columns(
        older=pl.col("sent").cum_sum(reverse=True).over("user_id"))  # from this bucket back
    # fold from the latest rank whose sends, and all older, fit the slots left from it
    starts = over.filter((pl.col("rank") < CONTACT_SLOTS) & (
        pl.col("older") <= SLOT_MOST * (CONTACT_SLOTS - pl.col("rank")))).group_by(
        "user_id").agg(start=pl.col("rank").max())
    over = over.join(starts, on="user_id", how="left").with_columns(
        pl.col("start").fill_null(0))  # more than every slot holds: they fill, saturated
    folded = (over.filter(pl.col("rank") >= pl.col("start"))
              .group_by("user_id", maintain_order=True)
              .agg(pl.col("day").max(), pl.col("sent").sum(), slots=CONTACT_SLOTS
                   - pl.col("start").first())
              .with_columns(part=pl.int_ranges(0, pl.col("slots"))).explode("part")
              .with_columns(channel=pl.lit(FOLDED),
                            sent=(pl.col("sent") - SLOT_MOST * pl.col("part")).clip(0, SLOT_MOST))
              .filter(pl.col("sent") > 0))
    exact = pl.concat([fitting.select(buckets.columns),
                       over.filter(pl.col("rank") < pl.col("start")).select(buckets.columns)])
    return pl.concat([exact, folded.select(buckets.columns).cast(buckets.schema)]).with_columns(
        pl.col("sent").clip(0, SLOT_MOST))


def unattributed(contacts: pl.DataFrame) -> pl.DataFrame:
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
