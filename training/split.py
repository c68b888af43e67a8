"""Time-based splits: fit on the past, evaluate on what came after, never a random split.

    ... history ... | fit_cut | label window | eval_cut | evaluation window | end

A learned model is fit on features at `fit_cut` with labels from the label window, then
applied to features at `eval_cut` (computed from events up to it only) and scored on the
evaluation window. Nothing after `eval_cut` reaches any model input.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from features.contract.schema import EventType
from features.event import RETURNED
from nbo.errors import DataContractError

MIN_HISTORY_DAYS = 7.0


@dataclass(frozen=True)
class TimeSplit:
    fit_cut: datetime
    eval_cut: datetime
    end: datetime

    @classmethod
    def last_days(cls, events: pl.DataFrame, eval_days: float = 14.0,
                  label_days: float = 14.0, history_days: float = MIN_HISTORY_DAYS) -> TimeSplit:
        """Evaluate on the last `eval_days` of the log, learn labels from the ones before,
        with at least `history_days` of events before those to learn from."""
        start, end = events["ts"].min(), events["ts"].max()
        if not isinstance(start, datetime) or not isinstance(end, datetime):
            raise DataContractError("no events to train on")
        needed = eval_days + label_days + history_days
        if end - start < timedelta(days=needed):
            raise DataContractError(
                f"the events span {(end - start) / timedelta(days=1):.1f} days, from "
                f"{start:%Y-%m-%d} to {end:%Y-%m-%d}; training needs at least {needed:g}: "
                f"{history_days:g} days of history, a {label_days:g}-day label window and a "
                f"{eval_days:g}-day evaluation window")
        eval_cut = end - timedelta(days=eval_days)
        split = cls(eval_cut - timedelta(days=label_days), eval_cut, end)
        split._check_purchases(events)
        return split

    def _check_purchases(self, events: pl.DataFrame) -> None:
        """The models learn from purchases before a cut and are scored on those after it:
        a log with none in a window is refused (the models had nothing to fit or score)."""
        bought = events.filter((pl.col("event_type") == EventType.PURCHASE.value)
                               & ~RETURNED)["ts"]
        windows = {"before the label window": bought <= self.fit_cut,
                   "in the label window": (bought > self.fit_cut) & (bought <= self.eval_cut),
                   "in the evaluation window": bought > self.eval_cut}
        empty = [name for name, inside in windows.items() if not inside.any()]
        if empty:
            raise DataContractError(
                f"no purchase {' or '.join(empty)} (the label window runs from "
                f"{self.fit_cut:%Y-%m-%d %H:%M} to {self.eval_cut:%Y-%m-%d %H:%M} UTC, the "
                f"evaluation window to {self.end:%Y-%m-%d %H:%M}): training learns from "
                "purchases before each cut and is scored on those after")


def up_to(events: pl.DataFrame, moment: datetime) -> pl.DataFrame:
    return events.filter(pl.col("ts") <= moment)


def between(events: pl.DataFrame, start: datetime, stop: datetime) -> pl.DataFrame:
    """Events after `start`, up to and including `stop`."""
    return events.filter((pl.col("ts") > start) & (pl.col("ts") <= stop))
