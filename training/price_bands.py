"""How well the served price bands name the band a user buys in, on the evaluation window.

Every purchase line after the evaluation cut with a price band is a case. Four predictions
from the features at the cut (as the store keeps them): the band per category
(`category_bands`, as decisions serve `category_price_bands`), the user's band over all
categories (their largest price affinity, the decision's `price_band`), the category's
most bought band before the cut, and the middle band.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import polars as pl

from features.contract.schema import EventType
from features.event import RETURNED
from features.pipeline import BatchFeatures
from features.price_bands import COLUMN, MID_BAND, category_bands, top_band
from training.cuts import FeaturesAt
from training.send_time import mean_or_nan
from training.split import TimeSplit, between, up_to

ACCURACY = "accuracy"


def _bought(events: pl.DataFrame) -> pl.DataFrame:
    """Purchase lines (not returns) with a band: (user_id, category, band)."""
    return (events.filter((pl.col("event_type") == EventType.PURCHASE.value) & ~RETURNED)
            .drop_nulls(COLUMN).select("user_id", "category", band=pl.col(COLUMN)))


@dataclass(frozen=True)
class ServedBands:
    """The bands decisions serve, read from batch features (as the store keeps them)."""

    affinity: dict[str, dict[str, float]]  # user -> price band ("0".."2") -> anchored total
    bought: dict[str, dict[str, tuple[int, int]]]  # user -> category -> (price lean, lines)

    @classmethod
    def of(cls, batch: BatchFeatures) -> ServedBands:
        affinity: dict[str, dict[str, float]] = {}
        for user, key, total in batch.counts["price_affinity"].iter_rows():
            affinity.setdefault(user, {})[key] = max(total, 0.0)  # as a state serves it
        bought: dict[str, dict[str, tuple[int, int]]] = {}
        for user, category, lean, lines in batch.category_purchases.select(
                "user_id", "category", "price_lean", "lines").iter_rows():
            bought.setdefault(user, {})[category] = (lean, lines)
        return cls(affinity, bought)

    def user_band(self, user: str) -> int | None:
        """The decision's `price_band`."""
        return top_band(self.affinity.get(user, {}))

    def category_bands(self, user: str, categories: Iterable[str]) -> dict[str, int]:
        """The decision's `category_price_bands`."""
        return category_bands(self.affinity.get(user, {}), self.bought.get(user, {}),
                              categories)


def evaluate_price_bands(features: FeaturesAt, split: TimeSplit) -> dict[str, float]:
    at_cut = features(split.eval_cut)
    lines = _bought(at_cut.bands.with_band(between(features.events, split.eval_cut,
                                                   split.end)))
    before = _bought(at_cut.bands.with_band(up_to(features.events, split.eval_cut)))
    served = ServedBands.of(at_cut)
    common = dict(before.group_by("category", "band").len()
                  .sort("len", "band", descending=[True, False])
                  .group_by("category", maintain_order=True).first()
                  .select("category", "band").iter_rows())
    hits: dict[str, list[bool]] = {ACCURACY: [], "user_band_accuracy": [],
                                   "category_band_accuracy": [], "mid_band_accuracy": []}
    for user, category, band in lines.iter_rows():
        user_band = served.user_band(user)
        hits[ACCURACY].append(served.category_bands(user, [category]).get(category, MID_BAND)
                              == band)
        hits["user_band_accuracy"].append((MID_BAND if user_band is None else user_band) == band)
        hits["category_band_accuracy"].append(common.get(category, MID_BAND) == band)
        hits["mid_band_accuracy"].append(band == MID_BAND)
    return {"lines": float(lines.height), **{name: mean_or_nan(values)
                                             for name, values in hits.items()}}
