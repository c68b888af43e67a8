"""Messages sent per user, channel and UTC day: exact counts for rolling frequency caps.

Kept as daily buckets (a few dozen per user) rather than decayed sums, because a cap
("at most 3 pushes in 7 days") must be exact. The store expires buckets past the longest
window; `sent_within` sums them at request time.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta

import polars as pl

from features.contract.schema import EventType
from features.event import Event

ALL_CHANNELS = "*"  # the bucket that counts every channel, for a global cap
CONTACT_DAYS = 31
"""Days of sends the store keeps (features/store/layout.py): the longest cap it counts."""


def contact_keys(event: Event) -> list[tuple[str, date]]:
    """The live half: the (channel, day) buckets one sent message adds 1 to."""
    if event.event_type is not EventType.MESSAGE_SENT:
        return []
    day = event.ts.date()
    buckets = [(ALL_CHANNELS, day)]
    if event.channel is not None:
        buckets.append((event.channel, day))
    return buckets


def contact_counts(events: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """The batch half: messages per (user_id, channel, day), with channel '*' for all."""
    sent = (events.lazy().filter(pl.col("event_type") == EventType.MESSAGE_SENT.value)
            .with_columns(day=pl.col("ts").dt.date()))
    per_channel = (sent.filter(pl.col("channel").is_not_null())
                   .group_by("user_id", "channel", "day").agg(sent=pl.len()))
    overall = sent.group_by("user_id", "day").agg(sent=pl.len()).with_columns(
        channel=pl.lit(ALL_CHANNELS)).select("user_id", "channel", "day", "sent")
    return pl.concat([per_channel, overall]).collect()


def sent_within(buckets: Mapping[date, int], now: datetime, days: int) -> int:
    """Messages in the `days` UTC days ending today (today included), and any dated later
    (a sender's clock running ahead, as live events may be: they were sent already)."""
    first = now.date() - timedelta(days=days - 1)
    return sum(count for day, count in buckets.items() if first <= day)


def last_contacts(events: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """The batch half of the last contact time: user_id, last_contact (the latest send)."""
    return (events.lazy().filter(pl.col("event_type") == EventType.MESSAGE_SENT.value)
            .group_by("user_id").agg(last_contact=pl.col("ts").max()).collect())
