"""Items: implicit ALS on user x item interest, giving each item its most similar items,
and the item table (category, brand, price band, recent popularity) that the served
recommendations read (models/items.py).

Interest is the same decayed, weighted count as the category affinity (views 1 ...
purchases 6, a 30-day half-life, returns taken back), per item instead of per category.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import orjson
import polars as pl
from threadpoolctl import threadpool_limits

from features.contract.schema import EventType
from features.counts import CATEGORY_AFFINITY, DecayedCount
from features.event import RETURNED
from features.price_bands import COLUMN as BAND_COLUMN
from features.price_bands import PriceBands
from models.categories import ALS_REGULARIZATION
from models.items import SIMILAR, SIMILAR_ARTIFACT, TABLE_ARTIFACT, TABLE_COLUMNS
from training.affinity.als import AlsScores, Factorization
from training.split import up_to

ITEM_INTEREST = DecayedCount("item_interest", ("item_id",), CATEGORY_AFFINITY.half_life,
                             CATEGORY_AFFINITY.weights)
ITEM_COLUMNS = ("item_id", "category", "brand", "price")  # what is read of the items table
FACTORS, ITERATIONS = 32, 15
# interest x CONFIDENCE is ALS's confidence: at x1 (a view = 1) the unobserved items' 1
# drowns the views, neighbours wander across categories and co-purchases are found less
# often than by chance; x40 was best on the label window (see docs/training.md)
CONFIDENCE = 40.0
POPULARITY_DAYS = 28.0
ITEM_PARAMETERS = {"factors": FACTORS, "iterations": ITERATIONS, "confidence": CONFIDENCE,
                   "regularization": ALS_REGULARIZATION, "similar": SIMILAR,
                   "popularity_days": POPULARITY_DAYS}


def item_interest(events: pl.DataFrame, anchor: datetime) -> pl.DataFrame:
    """(user_id, key, weight): each user's interest in each item at `anchor`, floored at 0."""
    counted = up_to(events, anchor).filter(pl.col("item_id").is_not_null())
    return ITEM_INTEREST.batch(counted, anchor).select(
        "user_id", "key", weight=pl.col("total").clip(lower_bound=0.0)).sort("user_id", "key")


def bought_items(events: pl.DataFrame) -> pl.DataFrame:
    """(user_id, key, ts): purchase lines with an item (returns left out)."""
    return events.filter((pl.col("event_type") == EventType.PURCHASE.value) & ~RETURNED
                         & pl.col("item_id").is_not_null()).select("user_id", "ts", key="item_id")


def nearest(factors: np.ndarray, n: int, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """(rows, n) int32 indices of each row's n nearest other rows by cosine, best first
    (ties by index), and their float32 similarities; -1 and 0 where there are fewer (a row
    of zeros is nobody's neighbour and has none)."""
    norms = np.linalg.norm(factors, axis=1, keepdims=True)
    unit = np.divide(factors, norms, out=np.zeros(factors.shape),
                     where=norms > 0).astype(np.float32)
    count = len(unit)
    neighbours = np.full((count, n), -1, dtype=np.int32)
    scores = np.zeros((count, n), dtype=np.float32)
    width = min(n, count - 1)
    if width <= 0:
        return neighbours, scores
    empty = norms[:, 0] <= 0
    with threadpool_limits(1, "blas"):
        for start in range(0, count, block):
            stop = min(start + block, count)
            similarity = unit[start:stop] @ unit.T
            similarity[:, empty] = -np.inf
            similarity[np.arange(stop - start), np.arange(start, stop)] = -np.inf
            best = np.argpartition(-similarity, width - 1, axis=1)[:, :width]
            values = np.take_along_axis(similarity, best, axis=1)
            order = np.lexsort((best, -values))
            best = np.take_along_axis(best, order, axis=1)
            values = np.take_along_axis(values, order, axis=1)
            found = np.isfinite(values) & ~empty[start:stop, None]
            neighbours[start:stop, :width] = np.where(found, best, -1)
            scores[start:stop, :width] = np.where(found, values, 0.0)
    return neighbours, scores


def item_table(events: pl.DataFrame, catalog: pl.DataFrame, bands: PriceBands,
               anchor: datetime, days: float = POPULARITY_DAYS) -> pl.DataFrame:
    """TABLE_COLUMNS for every item with an event up to `anchor`: category, brand and price
    from the items table (`catalog`, ITEM_COLUMNS), else as last seen in events; the price
    band among the category's prices; purchase lines in the last `days`."""
    seen = (up_to(events, anchor).filter(pl.col("item_id").is_not_null()).sort("ts")
            .group_by("item_id").agg(pl.col("category", "brand", "price").drop_nulls().last()))
    listed = catalog.select(*ITEM_COLUMNS).rename(
        {name: f"listed_{name}" for name in ITEM_COLUMNS[1:]})
    bought = bought_items(events.filter((pl.col("ts") > anchor - timedelta(days=days))
                                        & (pl.col("ts") <= anchor)))
    lines = bought.group_by(item_id="key").agg(popularity=pl.len().cast(pl.Float64))
    table = (seen.join(listed, on="item_id", how="left")
             .select("item_id", *(pl.coalesce(f"listed_{name}", name).alias(name)
                                  for name in ITEM_COLUMNS[1:]))
             .join(lines, on="item_id", how="left")
             .with_columns(pl.col("popularity").fill_null(0.0)))
    return bands.with_band(table).rename({BAND_COLUMN: "price_band"}).select(
        TABLE_COLUMNS).sort("item_id")


@dataclass(frozen=True)
class ItemModel:
    """What training writes for the item recommender."""

    items: list[str]  # the ALS model's items, rows of `neighbours`
    neighbours: np.ndarray
    scores: np.ndarray
    table: pl.DataFrame  # TABLE_COLUMNS

    @classmethod
    def fit(cls, events: pl.DataFrame, catalog: pl.DataFrame, bands: PriceBands,
            anchor: datetime, seed: int = 0,
            factorization: Factorization = "als") -> ItemModel:
        """From the events up to `anchor` only."""
        interest = item_interest(events, anchor).with_columns(pl.col("weight") * CONFIDENCE)
        table = item_table(events, catalog, bands, anchor)
        if interest.filter(pl.col("weight") > 0).is_empty():  # no item ids in the events
            return cls([], np.full((0, SIMILAR), -1, dtype=np.int32),
                       np.zeros((0, SIMILAR), dtype=np.float32), table)
        als = AlsScores.fit(interest, factors=FACTORS, iterations=ITERATIONS, seed=seed,
                            factorization=factorization)
        neighbours, scores = nearest(als.item_factors, SIMILAR)
        return cls(list(als.keys), neighbours, scores, table)

    def artifacts(self) -> dict[str, bytes]:
        """SIMILAR_ARTIFACT and TABLE_ARTIFACT; the same model, the same bytes."""
        return {SIMILAR_ARTIFACT: npz({"items": np.array(self.items, dtype=np.str_),
                                       "neighbours": self.neighbours, "scores": self.scores}),
                TABLE_ARTIFACT: orjson.dumps(self.table.to_dict(as_series=False))}


def npz(arrays: Mapping[str, np.ndarray]) -> bytes:
    """A compressed .npz as `np.load` reads it, without the clock time `np.savez` stamps on
    each member, so equal arrays give equal bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            member = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            member.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(member, "w", force_zip64=True) as out:
                np.lib.format.write_array(out, np.asarray(array), allow_pickle=False)
    return buffer.getvalue()
