"""NDCG@k and recall@k of per-user rankings against what users then did.

Scores and relevant items are long frames: (user_id, key, score) and (user_id, key).
Relevance is binary. Only users with at least one relevant key are evaluated; a user's
NDCG is DCG over the top k / the best DCG possible with their number of relevant keys.
"""

from __future__ import annotations

import math

import polars as pl


def rank_within_users(scores: pl.DataFrame) -> pl.DataFrame:
    """`scores` plus `rank` (0 = best) per user; ties broken by key for repeatability."""
    return (scores.sort(["user_id", "score", "key"], descending=[False, True, False])
            .with_columns(rank=pl.int_range(pl.len()).over("user_id")))


def ranking_metrics(scores: pl.DataFrame, relevant: pl.DataFrame, k: int = 10) -> dict[str, float]:
    relevant = relevant.select("user_id", "key").unique()
    evaluated = relevant.select("user_id").unique().join(
        scores.select("user_id").unique(), on="user_id")
    if evaluated.is_empty():
        return {f"ndcg@{k}": float("nan"), f"recall@{k}": float("nan"), "users": 0}
    top = rank_within_users(scores.join(evaluated, on="user_id")).filter(pl.col("rank") < k)
    hits = top.join(relevant, on=["user_id", "key"], how="inner").group_by("user_id").agg(
        dcg=(1.0 / (pl.col("rank") + 2).cast(pl.Float64).log(2)).sum(), hits=pl.len())
    ideal = [0.0]
    for position in range(k):
        ideal.append(ideal[-1] + 1.0 / math.log2(position + 2))
    per_user = (relevant.join(evaluated, on="user_id").group_by("user_id")
                .agg(relevant=pl.len())
                .join(hits, on="user_id", how="left")
                .with_columns(pl.col("dcg", "hits").fill_null(0))
                .sort("user_id")  # a fixed order of summation: the same inputs, the same bits
                .with_columns(idcg=pl.col("relevant").clip(upper_bound=k).replace_strict(
                    list(range(k + 1)), ideal, return_dtype=pl.Float64)))
    summary = per_user.select(ndcg=(pl.col("dcg") / pl.col("idcg")).mean(),
                              recall=(pl.col("hits") / pl.col("relevant")).mean())
    return {f"ndcg@{k}": float(summary["ndcg"][0]), f"recall@{k}": float(summary["recall"][0]),
            "users": per_user.height}
