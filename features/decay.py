"""Exponentially decayed sums kept as plain additions, so batch and live agree exactly.

A decayed sum at time T is  sum_i w_i * 2^-((T - t_i) / h)  for a half-life h. Written
relative to an anchor time A it is  2^-((T - A) / h) * sum_i w_i * 2^((t_i - A) / h):
the sum on the right (the *anchored total*) never needs rescaling when an event arrives,
so a live update is one addition (HINCRBYFLOAT in Redis), events may arrive in any order,
and a batch pass over a log gives exactly what live updates over the same log give.
The anchor is the cut-off time of the batch the live updates continue from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

_MAX_EXPONENT = 900.0  # 2**900 is still a finite float64; beyond it re-anchor (re-publish)


@dataclass(frozen=True)
class HalfLife:
    days: float

    @property
    def seconds(self) -> float:
        return self.days * 86_400.0

    def growth(self, ts: datetime, anchor: datetime) -> float:
        """2^((ts - anchor) / h): how much an event at `ts` counts in an anchored total."""
        exponent = (ts - anchor).total_seconds() / self.seconds
        if exponent > _MAX_EXPONENT:
            raise OverflowError(f"event {ts} is too far past the anchor {anchor}; re-publish")
        return float(2.0**exponent)

    def growth_expr(self, ts: pl.Expr, anchor: datetime) -> pl.Expr:
        """The same factor as a polars expression over a UTC timestamp column."""
        elapsed = (ts - pl.lit(anchor)).dt.total_microseconds().cast(pl.Float64) / 1e6
        return pl.lit(2.0).pow(elapsed / self.seconds)

    def factor(self, anchor: datetime, now: datetime) -> float:
        """2^-((now - anchor) / h): an anchored total times this is the decayed sum at `now`."""
        return float(2.0 ** (-(now - anchor).total_seconds() / self.seconds))
