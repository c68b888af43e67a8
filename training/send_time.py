"""Send time from the raw event logs: the logged sends and their opens, and the typical
delay from a send to its open that the send-time model subtracts (models.send_time).
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl

from features.contract.schema import EventType
from models.send_time import HOURS

OPEN_WITHIN = timedelta(days=2)


def sends_and_opens(events: pl.DataFrame) -> pl.DataFrame:
    """Every send (user_id, campaign_id, channel, sent) with its first open within
    OPEN_WITHIN (`opened`, null if none): same user, campaign and channel."""
    keys = ["user_id", "campaign_id", "channel"]
    kind = pl.col("event_type")
    sends = events.filter(kind == EventType.MESSAGE_SENT.value).select(*keys, sent="ts")
    opens = events.filter(kind == EventType.MESSAGE_OPEN.value).select(*keys, opened="ts")
    pairs = (sends.with_row_index("__send").join(opens, on=keys)
             .filter((pl.col("opened") >= pl.col("sent"))
                     & (pl.col("opened") <= pl.col("sent") + OPEN_WITHIN))
             .group_by("__send").agg(pl.col("opened").min()))
    return (sends.with_row_index("__send").join(pairs, on="__send", how="left")
            .sort("__send").drop("__send"))


def open_delay_hours(sends: pl.DataFrame) -> int:
    """The median whole hours from a send to its open, from `sends_and_opens`."""
    delay = (sends["opened"] - sends["sent"]).dt.total_seconds().drop_nulls()
    return int(round(float(delay.median()) / 3600)) if delay.len() else 0  # type: ignore[arg-type]


def within_an_hour(a: np.ndarray | pl.Series, b: np.ndarray | pl.Series) -> np.ndarray:
    distance = np.abs(np.asarray(a) - np.asarray(b)) % HOURS
    return np.asarray(np.minimum(distance, HOURS - distance) <= 1)


def mean_or_nan(values: object) -> float:
    """The mean of `values` (hits as booleans give a hit rate); NaN when there are none."""
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()) if array.size else float("nan")
