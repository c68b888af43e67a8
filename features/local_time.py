"""The hour of the week and of the day in the user's own time zone (week: 0 = Monday 00h).

The batch half converts each distinct (zone, quarter hour) once and joins the result back,
so a log of millions of events costs one join, not one time-zone conversion per event.
Every zone's UTC offset is a whole number of quarter hours, so a quarter hour has a single
local hour.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

COLUMN = "local_hour_of_week"
HOUR_COLUMN = "local_hour"
FALLBACK_ZONE = "UTC"  # for users whose zone is unknown
_QUARTER = "__quarter"


@lru_cache(maxsize=1024)
def user_zone(name: str | None) -> tzinfo:
    """A user's zone at request time; an unknown or missing one reads as UTC rather than
    failing a request."""
    try:
        return ZoneInfo(name or FALLBACK_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def hour_of_week(ts: datetime, zone: str | None) -> int:
    """The live half: one event's local hour of the week."""
    local = ts.astimezone(ZoneInfo(zone or FALLBACK_ZONE))
    return local.weekday() * 24 + local.hour


def _hour_of_week_expr(zone: str) -> pl.Expr:
    local = pl.col(_QUARTER).dt.convert_time_zone(zone)
    weekday = local.dt.weekday().cast(pl.Int16) - 1  # polars: Monday = 1
    return weekday * 24 + local.dt.hour().cast(pl.Int16)


def with_hour_of_week(events: pl.DataFrame, zones: pl.DataFrame) -> pl.DataFrame:
    """The batch half: `events` plus COLUMN and HOUR_COLUMN, from `zones` (user_id, timezone).

    Rows keep their order.
    """
    zone = pl.col("timezone").fill_null(FALLBACK_ZONE)
    keyed = events.lazy().join(zones.lazy().select("user_id", "timezone"), on="user_id",
                               how="left", maintain_order="left").with_columns(
        timezone=zone, **{_QUARTER: pl.col("ts").dt.truncate("15m")})
    quarters = keyed.select("timezone", _QUARTER).unique().collect()
    parts = [group.with_columns(_hour_of_week_expr(str(name)).alias(COLUMN))
             for (name,), group in quarters.group_by("timezone")]
    table = (pl.concat(parts) if parts else quarters.with_columns(
        pl.lit(None, dtype=pl.Int16).alias(COLUMN)))
    return (keyed.join(table.lazy(), on=["timezone", _QUARTER], how="left",
                       maintain_order="left")
            .with_columns((pl.col(COLUMN) % 24).alias(HOUR_COLUMN))
            .drop("timezone", _QUARTER).collect())
