"""The hour of the week in the user's own time zone (0 = Monday 00:00 ... 167)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import polars as pl

COLUMN = "local_hour_of_week"
FALLBACK_ZONE = "UTC"  # for users whose zone is unknown
_ORDER = "__order"


def hour_of_week(ts: datetime, zone: str | None) -> int:
    """The live half: one event's local hour of the week."""
    local = ts.astimezone(ZoneInfo(zone or FALLBACK_ZONE))
    return local.weekday() * 24 + local.hour


def _local_hour_of_week(zone: str) -> pl.Expr:
    local = pl.col("ts").dt.convert_time_zone(zone)
    weekday = local.dt.weekday().cast(pl.Int16) - 1  # polars: Monday = 1
    return (weekday * 24 + local.dt.hour().cast(pl.Int16)).alias(COLUMN)


def with_hour_of_week(events: pl.DataFrame, zones: pl.DataFrame) -> pl.DataFrame:
    """The batch half: `events` plus COLUMN, from `zones` (user_id, timezone)."""
    joined = (events.with_row_index(_ORDER)
              .join(zones.select("user_id", "timezone"), on="user_id", how="left")
              .with_columns(pl.col("timezone").fill_null(FALLBACK_ZONE)))
    parts = [group.with_columns(_local_hour_of_week(str(zone)))
             for (zone,), group in joined.group_by("timezone")]
    if not parts:
        return events.with_columns(pl.lit(None, dtype=pl.Int16).alias(COLUMN))
    return pl.concat(parts).sort(_ORDER).drop(_ORDER, "timezone")
