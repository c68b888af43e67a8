"""The learned category ranking: own history, collaborative filtering and popularity,
weighed by a LightGBM LambdaRank model rather than by hand, and scored against the two
baselines it has to beat (popularity, and the user's own recency-weighted purchases)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import lightgbm as lgb
import numpy as np
import polars as pl

from features.contract.schema import EventType
from features.event import RETURNED
from features.purchases import CATEGORY_PURCHASES
from models.categories import SIGNALS
from training.affinity.als import AlsScores, Factorization
from training.affinity.signals import category_signals, interest
from training.boosting import fit_ranker
from training.cuts import FeaturesAt
from training.ranking_metrics import ranking_metrics
from training.split import TimeSplit, between, up_to

OWN_HISTORY_HALF_LIFE_DAYS = 30.0
DAY_SECONDS = 86_400.0

def purchased(events: pl.DataFrame) -> pl.DataFrame:
    """(user_id, key): the categories each user bought (returns left out)."""
    return (events.filter((pl.col("event_type") == EventType.PURCHASE.value) & ~RETURNED
                          & pl.col("category").is_not_null())
            .select("user_id", key="category").unique().sort("user_id", "key"))


@dataclass(frozen=True)
class CategoryRanker:
    model: lgb.LGBMRanker

    def scores(self, signals: pl.DataFrame) -> pl.DataFrame:
        matrix = signals.select(SIGNALS).to_numpy()
        return signals.select("user_id", "key", score=pl.Series(
            np.asarray(self.model.booster_.predict(matrix), dtype=np.float64)))


def fit_category_ranker(features: FeaturesAt, split: TimeSplit, seed: int = 0,
                        factorization: Factorization = "als") -> CategoryRanker:
    """Signals at `fit_cut`, labels = categories bought in the label window."""
    batch = features(split.fit_cut)
    labels = purchased(between(features.events, split.fit_cut, split.eval_cut))
    fit_users = sorted(set(labels["user_id"]) & set(batch.users["user_id"]))
    signals = category_signals(batch, fit_users, AlsScores.fit(
        interest(batch), seed=seed, factorization=factorization))
    return CategoryRanker(fit_ranker(signals, labels, SIGNALS, seed))


def baseline_scores(signals: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Popularity, and own history: occasions decayed by time since the last purchase,
    then popularity for the categories never bought."""
    recency = pl.lit(2.0).pow(-pl.col("days_since_purchase").fill_null(1e6)
                              / OWN_HISTORY_HALF_LIFE_DAYS)
    own = pl.col("occasions") * recency + 1e-6 * pl.col("popularity")
    return {"popularity": signals.select("user_id", "key", score=pl.col("popularity")),
            "own_history": signals.select("user_id", "key", score=own)}


def purchase_history(events: pl.DataFrame, cut: datetime) -> pl.DataFrame:
    """(user_id, key, occasions, days_since_purchase) over every purchase up to `cut`: the
    store keeps only the categories bought last, but "never bought" and the own-history
    baseline read the whole history."""
    return CATEGORY_PURCHASES.batch(up_to(events, cut)).filter(pl.col("occasions") > 0).select(
        "user_id", key="category", occasions="occasions", days_since_purchase=(
            pl.lit(cut) - pl.col("last")).dt.total_seconds() / DAY_SECONDS)


def ranked_against_baselines(ranker: CategoryRanker, signals: pl.DataFrame,
                             history: pl.DataFrame) -> tuple[dict[str, pl.DataFrame],
                                                             pl.DataFrame]:
    """(user_id, key, score) of the ranker ("model") and of the baselines, and the
    (user_id, key) the users never bought (`history`: `purchase_history`)."""
    novel = signals.join(history, on=["user_id", "key"], how="anti").select("user_id", "key")
    whole = signals.drop("occasions", "days_since_purchase").join(
        history, on=["user_id", "key"], how="left").with_columns(pl.col("occasions").fill_null(0))
    return {"model": ranker.scores(signals), **baseline_scores(whole)}, novel


@dataclass(frozen=True)
class CategoryEvaluation:
    metrics: dict[str, float]
    scores: pl.DataFrame  # (user_id, key, score) of the ranker at the evaluation cut


def evaluate_category_ranking(features: FeaturesAt, split: TimeSplit, seed: int = 0,
                              k: int = 10,
                              factorization: Factorization = "als") -> CategoryEvaluation:
    """NDCG@k and recall@k of the ranker and the baselines on the evaluation window, over
    all categories and over the categories each user had never bought (cross-sell)."""
    ranker = fit_category_ranker(features, split, seed, factorization)
    batch = features(split.eval_cut)
    relevant = purchased(between(features.events, split.eval_cut, split.end))
    evaluated = sorted(set(relevant["user_id"]) & set(batch.users["user_id"]))
    signals = category_signals(batch, evaluated, AlsScores.fit(
        interest(batch), seed=seed, factorization=factorization))
    rankings, novel = ranked_against_baselines(
        ranker, signals, purchase_history(features.events, split.eval_cut))
    metrics: dict[str, float] = {}
    for name, scores in rankings.items():
        prefix = "" if name == "model" else f"{name}_"
        for scope, candidates in (("", scores), ("novel_", scores.join(
                novel, on=["user_id", "key"]))):
            wanted = relevant.join(candidates.select("user_id", "key"), on=["user_id", "key"])
            result = ranking_metrics(candidates, wanted, k)
            metrics[f"{scope}{prefix}ndcg@{k}"] = result[f"ndcg@{k}"]
            metrics[f"{scope}{prefix}recall@{k}"] = result[f"recall@{k}"]
            metrics[f"{scope}users"] = result["users"]
    return CategoryEvaluation(metrics, rankings["model"])


def oracle_correlation(scores: pl.DataFrame, truth: pl.DataFrame) -> float:
    """Mean per-user Spearman correlation of scores with true preferences (user_id, key,
    preference), over users with at least 3 categories in both."""
    joined = scores.join(truth, on=["user_id", "key"])
    per_user = joined.group_by("user_id").agg(
        n=pl.len(), rho=pl.corr("score", "preference", method="spearman"))
    rho = per_user.filter(pl.col("n") >= 3).sort("user_id")["rho"].drop_nans().drop_nulls()
    return float(rho.to_numpy().mean()) if rho.len() else float("nan")
