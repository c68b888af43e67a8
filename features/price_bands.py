"""Price bands: where a price sits among its category's prices (low, mid, high).

The bounds are the category's price terciles, taken from the items table (or, without
one, from the prices seen in events) when features are computed in batch, and kept with
the published features so a live event lands in the same band as in batch.

The band a user buys in within a category (`category_bands`) reads their purchase lines
there (a tally's `price_lean`: high-band lines minus low-band ones) shrunk toward where
their price affinity over all categories sits (`price_position`); PRIOR_LINES and
LEAN_THRESHOLD were chosen on a generated world's next purchases (docs/training.md).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import polars as pl

BANDS = ("low", "mid", "high")
MID_BAND = 1
COLUMN = "price_band"
PRIOR_LINES = 4.0  # the weight of the overall position, in purchase lines of the category
LEAN_THRESHOLD = 0.1  # a position further from 0 than this leaves the middle band


def top_band(affinity: Mapping[str, float]) -> int | None:
    """The band of a user's largest positive price affinity (per band, "0".."2")."""
    best = max(range(len(BANDS)), key=lambda band: (affinity.get(str(band), 0.0), -band))
    return best if affinity.get(str(best), 0.0) > 0 else None


def price_position(affinity: Mapping[str, float]) -> float:
    """Where a user's price affinity sits: (high - low) / (all + 1), in (-1, 1)."""
    low, high = affinity.get("0", 0.0), affinity.get(str(len(BANDS) - 1), 0.0)
    return (high - low) / (sum(affinity.get(str(b), 0.0) for b in range(len(BANDS))) + 1.0)


def category_bands(affinity: Mapping[str, float], bought: Mapping[str, tuple[int, int]],
                   categories: Iterable[str]) -> dict[str, int]:
    """The band a user buys in within each category: where they bought (`bought`: category
    -> their tally's price lean and lines), the lean over the lines shrunk toward their
    price position; elsewhere their top band (no band without any price affinity)."""
    position, top = price_position(affinity), top_band(affinity)
    bands: dict[str, int] = {}
    for category in categories:
        lean, lines = bought.get(category, (0, 0))
        if lines:
            shrunk = (lean + PRIOR_LINES * position) / (lines + PRIOR_LINES)
            bands[category] = (0 if shrunk < -LEAN_THRESHOLD else
                               len(BANDS) - 1 if shrunk > LEAN_THRESHOLD else MID_BAND)
        elif top is not None:
            bands[category] = top
    return bands


@dataclass(frozen=True)
class PriceBands:
    bounds: Mapping[str, tuple[float, float]]  # category -> (lower, upper tercile)

    @classmethod
    def from_prices(cls, priced: pl.DataFrame | pl.LazyFrame) -> PriceBands:
        """Terciles per category of a frame with `category` and `price` columns."""
        terciles = (priced.lazy().filter(pl.col("category").is_not_null()
                                         & pl.col("price").is_not_null())
                    .group_by("category")
                    .agg(low=pl.col("price").quantile(1 / 3, "linear"),
                         high=pl.col("price").quantile(2 / 3, "linear"))
                    .sort("category").collect())
        return cls({category: (low, high) for category, low, high in terciles.iter_rows()})

    def band(self, category: str | None, price: float | None) -> int | None:
        """The live half: 0, 1 or 2, or None for an unknown category or no price."""
        if category is None or price is None or category not in self.bounds:
            return None
        return bisect_left(self.bounds[category], price)

    def with_band(self, events: pl.DataFrame) -> pl.DataFrame:
        """The batch half: `events` plus COLUMN, rows in the same order."""
        bounds = pl.DataFrame(
            {"category": list(self.bounds),
             "__low": [low for low, _ in self.bounds.values()],
             "__high": [high for _, high in self.bounds.values()]},
            schema={"category": pl.String, "__low": pl.Float64, "__high": pl.Float64})
        price = pl.col("price")
        band = (pl.when(price.is_null() | pl.col("__low").is_null()).then(None)
                .when(price <= pl.col("__low")).then(0)
                .when(price <= pl.col("__high")).then(1)
                .otherwise(2).cast(pl.Int8))
        return (events.join(bounds, on="category", how="left", maintain_order="left")
                .with_columns(band.alias(COLUMN)).drop("__low", "__high"))
