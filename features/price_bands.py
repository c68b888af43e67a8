"""Price bands: where a price sits among its category's prices (low, mid, high).

The bounds are the category's price terciles, taken from the items table (or, without
one, from the prices seen in events) when features are computed in batch, and kept with
the published features so a live event lands in the same band as in batch.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

BANDS = ("low", "mid", "high")
COLUMN = "price_band"


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
