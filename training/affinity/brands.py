"""The learned brand ranking, from what the store serves for a user.

The store keeps a user's top brands and top categories (features/store/layout.py), so the
ranker sees exactly those: candidates are the user's kept brands plus the most popular
brands of their top categories, and the signals are

    affinity, affinity_share   the brand's decayed interest (kept brands only) and share
    category_share             the user's interest share in the brand's category
    popularity                 the brand's share of purchases within its category
    category_popularity        the category's share of all purchases
    als                        collaborative filtering on user x brand (kept brands)

A LightGBM LambdaRank model weighs them; it is compared with global popularity and with
the user's own recency-weighted brand purchases (then popularity), on every brand.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import polars as pl

from features.contract.schema import EventType
from features.event import RETURNED
from features.pipeline import BatchFeatures
from features.store.layout import TOP_BRANDS, TOP_CATEGORIES
from models.brands import CANDIDATE_CATEGORIES, POPULAR_PER_CATEGORY, SIGNALS
from training.affinity.als import AlsScores, Factorization
from training.affinity.categories import OWN_HISTORY_HALF_LIFE_DAYS
from training.boosting import fit_ranker
from training.cuts import FeaturesAt
from training.ranking_metrics import ranking_metrics
from training.split import TimeSplit, between, up_to

DAY_SECONDS = 86_400.0


def bought_brands(events: pl.DataFrame) -> pl.DataFrame:
    """(user_id, key, category, ts): purchase lines with a brand (returns left out)."""
    return events.filter((pl.col("event_type") == EventType.PURCHASE.value) & ~RETURNED
                         & pl.col("brand").is_not_null()).select(
        "user_id", "ts", "category", key="brand")


def _top(frame: pl.DataFrame, limit: int) -> pl.DataFrame:
    return (frame.sort("user_id", "total", "key", descending=[False, True, False])
            .filter(pl.int_range(pl.len()).over("user_id") < limit))


@dataclass(frozen=True)
class BrandContext:
    """What the brand ranker reads at one cut."""

    kept: pl.DataFrame  # (user_id, key, total): the brands the store keeps per user
    categories: pl.DataFrame  # (user_id, category, category_share): kept top categories
    popularity: pl.DataFrame  # (key, category, popularity, category_popularity)

    @classmethod
    def at(cls, batch: BatchFeatures, events: pl.DataFrame) -> BrandContext:
        kept = _top(batch.counts["brand_affinity"].filter(pl.col("total") > 0), TOP_BRANDS)
        categories = _top(batch.counts["category_affinity"].filter(pl.col("total") > 0),
                          TOP_CATEGORIES).select(
            "user_id", category="key",
            category_share=pl.col("total") / pl.col("total").sum().over("user_id"))
        lines = bought_brands(up_to(events, batch.anchor)).group_by("key", "category").len()
        popularity = lines.select(
            "key", "category", "len",
            popularity=pl.col("len") / pl.col("len").sum().over("category"),
            category_popularity=pl.col("len").sum().over("category") / pl.col("len").sum())
        return cls(kept, categories, popularity.drop("len").sort("key", "category"))

    @property
    def main(self) -> pl.DataFrame:
        """`popularity`'s row of each brand's main category, the one it sells most in (ties:
        the first by name): a brand's signals read that one, in training and serving
        (models/brands.py); every category lists its own popular brands all the same."""
        sold = pl.col("popularity") * pl.col("category_popularity")  # its share of all lines
        return (self.popularity.sort([sold, pl.col("category")], descending=[True, False])
                .unique("key", keep="first", maintain_order=True).sort("key"))

    def signals(self, users: list[str], als: AlsScores) -> pl.DataFrame:
        """Candidates of `users` with SIGNALS, sorted by user and brand."""
        who = pl.DataFrame({"user_id": users})
        popular = (self.popularity.sort("category", "popularity", "key",
                                        descending=[False, True, False])
                   .filter(pl.int_range(pl.len()).over("category") < POPULAR_PER_CATEGORY))
        top_categories = (self.categories.join(who, on="user_id")
                          .sort("user_id", "category_share", descending=[False, True])
                          .filter(pl.int_range(pl.len()).over("user_id")
                                  < CANDIDATE_CATEGORIES))
        candidates = pl.concat([
            self.kept.join(who, on="user_id").select("user_id", "key"),
            top_categories.join(popular, on="category").select("user_id", "key"),
        ]).unique()
        kept = self.kept.select("user_id", "key", affinity="total").with_columns(
            affinity_share=pl.col("affinity") / pl.col("affinity").sum().over("user_id"))
        signals = (candidates.join(kept, on=["user_id", "key"], how="left")
                   .join(self.main, on="key", how="left")
                   .join(self.categories, on=["user_id", "category"], how="left")
                   .with_columns(pl.col(*SIGNALS[:-1]).fill_null(0.0))
                   .sort("user_id", "key"))
        return signals.with_columns(als=pl.Series(als.score(signals), dtype=pl.Float64))

    def als(self, seed: int, factorization: Factorization = "als") -> AlsScores:
        return AlsScores.fit(self.kept.select("user_id", "key", weight="total"), seed=seed,
                             factorization=factorization)


def fit_brand_ranker(features: FeaturesAt, split: TimeSplit, seed: int = 0,
                     factorization: Factorization = "als") -> lgb.LGBMRanker:
    events = features.events
    context = BrandContext.at(features(split.fit_cut), events)
    labels = bought_brands(between(events, split.fit_cut, split.eval_cut)).select(
        "user_id", "key").unique()
    users = sorted(set(labels["user_id"]))
    return fit_ranker(context.signals(users, context.als(seed, factorization)), labels,
                      SIGNALS, seed)


@dataclass(frozen=True)
class BrandEvaluation:
    metrics: dict[str, float]
    scores: pl.DataFrame  # (user_id, key, score) of the ranker at the evaluation cut


def evaluate_brand_ranking(features: FeaturesAt, split: TimeSplit, seed: int = 0,
                           k: int = 10, factorization: Factorization = "als") -> BrandEvaluation:
    events = features.events
    ranker = fit_brand_ranker(features, split, seed, factorization)
    context = BrandContext.at(features(split.eval_cut), events)
    relevant = bought_brands(between(events, split.eval_cut, split.end)).select(
        "user_id", "key").unique()
    users = sorted(set(relevant["user_id"]))
    signals = context.signals(users, context.als(seed, factorization))
    model = signals.select("user_id", "key", score=pl.Series(
        np.asarray(ranker.booster_.predict(signals.select(SIGNALS).to_numpy()))))
    shares = context.popularity.group_by("key").agg(  # each brand's share of all lines
        score=(pl.col("popularity") * pl.col("category_popularity")).sum())
    overall = pl.DataFrame({"user_id": users}).join(shares, how="cross").select(
        "user_id", "key", "score")
    history = bought_brands(up_to(events, split.eval_cut)).group_by("user_id", "key").agg(
        own=(pl.lit(2.0).pow(-(pl.lit(split.eval_cut) - pl.col("ts")).dt.total_seconds()
                             / DAY_SECONDS / OWN_HISTORY_HALF_LIFE_DAYS)).sum())
    own = overall.join(history, on=["user_id", "key"], how="left").select(
        "user_id", "key", score=pl.col("own").fill_null(0.0) + 1e-6 * pl.col("score"))
    # a buyer the ranker has nothing on (no brand kept, no category) gets the popular
    # brands, as at serving: every ranking is scored on the same buyers
    served = pl.concat([model, overall.join(model.select("user_id").unique(), on="user_id",
                                            how="anti")])
    metrics: dict[str, float] = {}
    for name, scores in (("", served), ("popularity_", overall), ("own_history_", own)):
        result = ranking_metrics(scores, relevant, k)
        metrics[f"{name}ndcg@{k}"] = result[f"ndcg@{k}"]
        metrics[f"{name}recall@{k}"] = result[f"recall@{k}"]
    metrics["users"] = float(len(users))
    return BrandEvaluation(metrics, model)
