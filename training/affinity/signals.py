"""What a category ranker knows about a (user, category) pair at a cut-off.

Everything comes from the serving features (`features.pipeline.BatchFeatures` at the cut),
so the ranker learns from exactly what the API will read:

    affinity             decayed, weighted interest (views ... purchases)
    affinity_share       that interest as a share of the user's total interest
    occasions            buying occasions in the category
    days_since_purchase  since the last one (missing: never bought)
    due                  the repeat-cycle due score (features/cycles.py)
    recent_rank          0..2 when among the last browsed categories
    popularity           the category's share of all purchase lines
    als                  collaborative filtering score (training/affinity/als.py)
    user_occasions       the user's buying occasions in all categories
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from features.cycles import DEFAULT_CYCLE
from features.pipeline import PURCHASE_PREFIX, BatchFeatures
from features.purchases import PurchaseTally
from models.categories import SIGNALS
from training.affinity.als import AlsScores

DAY_SECONDS = 86_400.0


def categories_of(batch: BatchFeatures) -> list[str]:
    return sorted(set(batch.bands.bounds) | set(batch.counts["category_affinity"]["key"])
                  | set(batch.category_purchases["category"]))


def interest(batch: BatchFeatures) -> pl.DataFrame:
    """(user_id, key, weight): the users' category affinity at the cut, floored at zero."""
    return batch.counts["category_affinity"].select(
        "user_id", "key", weight=pl.col("total").clip(lower_bound=0.0))


def category_popularity(batch: BatchFeatures) -> dict[str, float]:
    """Each category's share of all purchase lines (saved with the model for serving)."""
    lines = batch.category_purchases.group_by("category").agg(lines=pl.col("lines").sum())
    total = max(lines["lines"].sum(), 1)
    return {category: count / total for category, count in lines.sort("category").iter_rows()}


def category_signals(batch: BatchFeatures, users: Sequence[str], als: AlsScores) -> pl.DataFrame:
    """One row per (user, category) for `users` x every category, with SIGNALS."""
    candidates = pl.DataFrame({"user_id": list(users)}).join(
        pl.DataFrame({"key": categories_of(batch)}), how="cross")
    affinity = interest(batch).rename({"weight": "affinity"}).sort("user_id", "key")
    total = pl.col("affinity").sum().over("user_id")
    affinity = affinity.with_columns(  # no interest left at all: shares of 0, as served
        affinity_share=pl.when(total > 0).then(pl.col("affinity") / total).otherwise(0.0))
    tallies = batch.category_purchases.rename({"category": "key"})
    due = [DEFAULT_CYCLE.due(PurchaseTally.from_row(row), batch.cycles.get(row["key"]),
                             batch.anchor) for row in tallies.iter_rows(named=True)]
    tallies = tallies.select(
        "user_id", "key", "occasions",
        days_since_purchase=(pl.lit(batch.anchor) - pl.col("last")).dt.total_seconds()
        / DAY_SECONDS,
        due=pl.Series(due, dtype=pl.Float64))
    shares = category_popularity(batch)
    popularity = pl.DataFrame({"key": list(shares), "popularity": list(shares.values())},
                              schema={"key": pl.String, "popularity": pl.Float64})
    recent = (batch.users.select("user_id", key="recent_categories").explode("key")
              .drop_nulls("key").with_columns(
                  recent_rank=pl.int_range(pl.len()).over("user_id").cast(pl.Float64)))
    user_level = batch.users.select("user_id", user_occasions=PURCHASE_PREFIX + "occasions")
    signals = (candidates.join(affinity, on=["user_id", "key"], how="left")
               .join(tallies, on=["user_id", "key"], how="left")
               .join(recent, on=["user_id", "key"], how="left")
               .join(popularity, on="key", how="left")
               .join(user_level, on="user_id", how="left")
               .with_columns(pl.col("affinity", "affinity_share", "occasions", "popularity",
                                   "user_occasions").fill_null(0.0)))
    return signals.with_columns(als=pl.Series(als.score(signals), dtype=pl.Float64)).select(
        "user_id", "key", *(pl.col(name).cast(pl.Float64) for name in SIGNALS)).sort(
        "user_id", "key")
