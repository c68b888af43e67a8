"""Logged sends and whether each converted: the offer model's examples.

A send converted when the user made a purchase attributed to it (same campaign and
channel) within ATTRIBUTION after it. A send is only a usable example once its whole
attribution window lies before the cut its labels may come from.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from features.contract.schema import EventType
from features.event import RETURNED
from features.local_time import with_hour_of_week

ATTRIBUTION = timedelta(days=7)
SEND_COLUMNS = ("user_id", "ts", "channel", "campaign_id", "offer_id", "journey", "propensity")
EXTRA_COLUMNS = ("offer_id", "journey", "propensity")  # what load_inputs must also keep


def logged_sends(events: pl.DataFrame, users: pl.DataFrame, start: datetime,
                 stop: datetime) -> pl.DataFrame:
    """Sends in (start, stop - ATTRIBUTION] with `converted`, local hour and weekday."""
    kind = pl.col("event_type")
    sends = events.filter((kind == EventType.MESSAGE_SENT.value) & (pl.col("ts") > start)
                          & (pl.col("ts") <= stop - ATTRIBUTION)
                          & pl.col("channel").is_not_null()).select(SEND_COLUMNS)
    bought = events.filter((kind == EventType.PURCHASE.value) & ~RETURNED
                           & pl.col("campaign_id").is_not_null() & (pl.col("ts") <= stop)
                           ).select("user_id", "campaign_id", "channel", bought_at="ts")
    keys = ["user_id", "campaign_id", "channel"]
    with_ids = sends.with_row_index("__send")
    converted = (with_ids.join(bought, on=keys, how="inner")
                 .filter((pl.col("bought_at") > pl.col("ts"))
                         & (pl.col("bought_at") <= pl.col("ts") + ATTRIBUTION))
                 .select("__send").unique().with_columns(converted=pl.lit(1, pl.Int8)))
    labelled = (with_ids.join(converted, on="__send", how="left")
                .with_columns(pl.col("converted").fill_null(0)).sort("__send").drop("__send"))
    local = with_hour_of_week(labelled, users.select("user_id", "timezone"))
    return local.with_columns(weekend=(pl.col("local_hour_of_week") >= 5 * 24).cast(pl.Int8))
