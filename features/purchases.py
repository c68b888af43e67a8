"""Purchase history per user, or per user and category: how often, how much, when.

Recency, frequency, monetary value, average order value, return rate, the repeat cycle
and where the user buys within a category's prices (`price_lean`) are all read from these
tallies. `batch` folds a log; `live` applies one event.
Purchase lines less than OCCASION_GAP apart count as one buying occasion (one basket),
so a cycle is measured between baskets, not between the lines of one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import polars as pl

from features.contract.schema import EventType
from features.event import RETURNED, Event
from features.price_bands import COLUMN as BAND_COLUMN
from features.price_bands import MID_BAND

OCCASION_GAP = timedelta(hours=12)


@dataclass(frozen=True)
class PurchaseTally:
    """What a user's purchases (in one key) add up to."""

    lines: int = 0  # purchase lines with a positive quantity
    occasions: int = 0  # buying occasions: lines more than OCCASION_GAP after the previous
    returns: int = 0  # lines with a negative quantity
    amount: float = 0.0  # spend net of returns: sum of price x quantity
    first: datetime | None = None  # first purchase
    last: datetime | None = None  # latest purchase
    price_lean: int = 0  # lines in their category's high price band minus those in its low

    def apply(self, event: Event) -> PurchaseTally:
        """The tally after one purchase event (the live half)."""
        quantity = 1 if event.quantity is None else event.quantity
        amount = self.amount + (event.price or 0.0) * quantity
        if event.is_return:
            return replace(self, returns=self.returns + 1, amount=amount)
        new_occasion = self.last is None or event.ts - self.last > OCCASION_GAP
        return PurchaseTally(
            lines=self.lines + 1,
            occasions=self.occasions + int(new_occasion),
            returns=self.returns,
            amount=amount,
            first=event.ts if self.first is None else min(self.first, event.ts),
            last=event.ts if self.last is None else max(self.last, event.ts),
            price_lean=self.price_lean + (0 if event.price_band is None
                                          else event.price_band - MID_BAND),
        )

    @classmethod
    def from_row(cls, row: Mapping[str, object]) -> PurchaseTally:
        """From a row of `PurchaseHistory.batch` (extra columns such as keys are ignored)."""
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})  # type: ignore[arg-type]

    def average_order(self) -> float:
        """Spend per buying occasion (the lines of one basket are one order); 0 before any
        (training/offers/design.py computes the model's `aov` column alike)."""
        return self.amount / max(self.occasions, 1)

    def mean_interval(self) -> timedelta | None:
        """Average time between buying occasions (to the microsecond); None before the
        second one."""
        if self.occasions < 2 or self.first is None or self.last is None:
            return None
        return (self.last - self.first) / (self.occasions - 1)

    def mean_interval_days(self) -> float | None:
        """`mean_interval` in days."""
        interval = self.mean_interval()
        return None if interval is None else interval.total_seconds() / 86_400


@dataclass(frozen=True)
class PurchaseHistory:
    """Purchase tallies per user (column None) or per user and a column's value."""

    name: str
    column: str | None = None

    def key(self, event: Event) -> str | None:
        return None if self.column is None else getattr(event, self.column)

    def live(self, event: Event) -> bool:
        """Whether the event changes this history (then `PurchaseTally.apply` it)."""
        return event.event_type is EventType.PURCHASE and (
            self.column is None or self.key(event) is not None)

    def batch(self, events: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
        """One row per user (and key) with the PurchaseTally fields."""
        keys = ["user_id"] if self.column is None else ["user_id", self.column]
        purchases = events.lazy().filter(pl.col("event_type") == EventType.PURCHASE.value)
        lean = (pl.col(BAND_COLUMN).cast(pl.Int64) - MID_BAND if BAND_COLUMN
                in purchases.collect_schema() else pl.lit(None))  # without bands: unknown
        if self.column is not None:
            purchases = purchases.filter(pl.col(self.column).is_not_null())
        quantity = pl.col("quantity").fill_null(1)
        bought = ~RETURNED
        gap = pl.col("ts").diff().over(keys)
        occasion = bought & (gap.is_null() | (gap > OCCASION_GAP))
        positive = purchases.filter(bought).sort("ts").with_columns(occasion=occasion)
        tallies = positive.group_by(keys).agg(
            lines=pl.len(),
            occasions=pl.col("occasion").sum(),
            first=pl.col("ts").min(),
            last=pl.col("ts").max(),
            price_lean=lean.fill_null(0).sum(),
        )
        money = purchases.group_by(keys).agg(
            returns=(~bought).sum(),
            amount=(pl.col("price").fill_null(0.0) * quantity).sum(),
        )
        return (money.join(tallies, on=keys, how="left")
                .with_columns(pl.col("lines", "occasions", "price_lean").fill_null(0))
                .collect())


USER_PURCHASES = PurchaseHistory("purchases")
CATEGORY_PURCHASES = PurchaseHistory("category_purchases", "category")
PURCHASE_HISTORIES = (USER_PURCHASES, CATEGORY_PURCHASES)
