"""Department affinity: nbo's learned category ranker on each user's last order.

Signals, the fit, the baselines and the metrics are nbo's own (training/affinity/,
training/ranking_metrics.py); only the per-user cuts are this benchmark's (split.py).
The scoring below is `evaluate_category_ranking`'s, over the per-user cuts.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from benchmarks.instacart.split import Cut
from training.affinity.als import AlsScores
from training.affinity.categories import (
    CategoryRanker,
    purchase_history,
    purchased,
    ranked_against_baselines,
)
from training.affinity.signals import category_signals, interest
from training.ranking_metrics import ranking_metrics

FOLDS = 10


def cut_signals(cut: Cut, seed: int) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The ranker's signals for the cut's users (every department each), the departments
    of their last order (user_id, key) and their whole purchase history before it."""
    known = set(cut.batch.users["user_id"])
    users = [user for user in cut.users if user in known]
    als = AlsScores.fit(interest(cut.batch), seed=seed)
    return (category_signals(cut.batch, users, als), purchased(cut.after),
            purchase_history(cut.before, cut.batch.anchor))


def department_metrics(ranker: CategoryRanker, signals: pl.DataFrame, relevant: pl.DataFrame,
                       history: pl.DataFrame, k: int = 10,
                       folds: int = FOLDS) -> dict[str, float]:
    """NDCG@k and recall@k of the ranker, popularity and own history, over every
    department (`all_`) and over those the user had never bought (`novel_`); and the
    model's NDCG@k lead over each baseline with its standard error, from `folds` disjoint
    groups of users (paired: the same users for the model and the baseline)."""
    rankings, novel = ranked_against_baselines(ranker, signals, history)
    fold = pl.col("user_id").cast(pl.Int64, strict=False).fill_null(0) % folds
    metrics: dict[str, float] = {}
    ndcg = f"ndcg@{k}"
    for scope in ("all", "novel"):
        by_fold: dict[str, np.ndarray] = {}
        for name, scores in rankings.items():
            candidates = scores if scope == "all" else scores.join(novel, on=["user_id", "key"])
            wanted = relevant.join(candidates.select("user_id", "key"), on=["user_id", "key"])
            result = ranking_metrics(candidates, wanted, k)
            metrics[f"{scope}_{name}_{ndcg}"] = result[ndcg]
            metrics[f"{scope}_{name}_recall@{k}"] = result[f"recall@{k}"]
            metrics[f"{scope}_users"] = result["users"]
            by_fold[name] = np.array([
                ranking_metrics(candidates.filter(fold == f), wanted.filter(fold == f), k)[ndcg]
                for f in range(folds)])
        for name in ("popularity", "own_history"):
            # the lead over all users (the NDCGs' own difference); the folds, unequal in
            # users, give only its standard error
            lead = by_fold["model"] - by_fold[name]
            metrics[f"{scope}_model_lead_over_{name}_{ndcg}"] = (
                metrics[f"{scope}_model_{ndcg}"] - metrics[f"{scope}_{name}_{ndcg}"])
            metrics[f"{scope}_model_lead_over_{name}_se"] = float(
                np.nanstd(lead, ddof=1) / np.sqrt(np.isfinite(lead).sum()))
    metrics["candidates_per_user"] = signals.height / max(signals["user_id"].n_unique(), 1)
    metrics["relevant_per_user"] = relevant.height / max(relevant["user_id"].n_unique(), 1)
    return metrics
