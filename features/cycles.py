"""Repeat cycles: when a user is due to buy a category again.

A user's own cycle in a category is their mean interval between buying occasions. With
few occasions it is noisy, so it is shrunk toward the category's cycle (the median of the
repeat buyers' own cycles), weighing the category's as `prior_intervals` intervals:

    interval = (n * own + prior_intervals * category) / (n + prior_intervals)

with n = occasions - 1. The due score is days since the last purchase / interval: 0 just
after a purchase, 1 when the next one is expected, above 1 when overdue.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from features.purchases import PurchaseTally

DAY_SECONDS = 86_400.0


@dataclass(frozen=True)
class RepeatCycle:
    prior_intervals: float = 2.0
    min_repeat_buyers: int = 5  # below this a category has no cycle of its own

    def category_cycles(self, category_tallies: pl.DataFrame) -> dict[str, float]:
        """Each category's cycle in days, from `PurchaseHistory.batch` rows per category."""
        own = (pl.col("last") - pl.col("first")).dt.total_seconds() / DAY_SECONDS / (
            pl.col("occasions") - 1)
        cycles = (category_tallies.lazy().filter(pl.col("occasions") >= 2)
                  .group_by("category")
                  .agg(days=own.median(), buyers=pl.len())
                  .filter(pl.col("buyers") >= self.min_repeat_buyers)
                  .sort("category").collect())
        return {category: days for category, days, _ in cycles.iter_rows()}

    def interval_days(self, tally: PurchaseTally, category_cycle: float | None) -> float | None:
        """The shrunk interval, or None with neither an own nor a category cycle."""
        own = tally.mean_interval_days()
        if own is None:
            return category_cycle
        if category_cycle is None:
            return own
        n = tally.occasions - 1
        return (n * own + self.prior_intervals * category_cycle) / (n + self.prior_intervals)

    def due(self, tally: PurchaseTally, category_cycle: float | None,
            now: datetime) -> float | None:
        """Days since the last purchase over the interval; None if it cannot be told."""
        interval = self.interval_days(tally, category_cycle)
        if tally.last is None or interval is None or interval <= 0:
            return None
        return max(0.0, (now - tally.last).total_seconds() / DAY_SECONDS / interval)

    def due_categories(self, tallies: Mapping[str, PurchaseTally],
                       cycles: Mapping[str, float], now: datetime) -> list[tuple[str, float]]:
        """The user's categories with a due score, most due first."""
        scores = ((category, self.due(tally, cycles.get(category), now))
                  for category, tally in tallies.items())
        return sorted(((c, s) for c, s in scores if s is not None), key=lambda cs: -cs[1])


DEFAULT_CYCLE = RepeatCycle()
