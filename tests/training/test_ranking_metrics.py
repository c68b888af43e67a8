import math

import polars as pl
import pytest

from training.ranking_metrics import ranking_metrics


def _scores(*rows: tuple[str, str, float]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["user_id", "key", "score"], orient="row")


def _relevant(*rows: tuple[str, str]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["user_id", "key"], orient="row")


def test_ndcg_and_recall_match_a_hand_computation() -> None:
    scores = _scores(("u1", "a", 0.2), ("u1", "b", 0.9), ("u1", "c", 0.1),
                     ("u2", "a", 0.9), ("u2", "b", 0.5), ("u2", "c", 0.4))
    relevant = _relevant(("u1", "a"), ("u2", "a"), ("u2", "c"))
    at_two = ranking_metrics(scores, relevant, k=2)
    u1 = (1 / math.log2(3)) / 1.0  # a at rank 1 (0-based), one relevant
    u2 = 1.0 / (1.0 + 1 / math.log2(3))  # a at rank 0, c at rank 2: outside the top 2
    assert at_two["ndcg@2"] == pytest.approx((u1 + u2) / 2)
    assert at_two["recall@2"] == pytest.approx((1.0 + 0.5) / 2)
    assert at_two["users"] == 2


def test_users_without_anything_relevant_are_not_evaluated() -> None:
    scores = _scores(("u1", "a", 1.0), ("u3", "a", 1.0))
    result = ranking_metrics(scores, _relevant(("u1", "a"), ("u9", "a")), k=10)
    assert result["users"] == 1 and result["ndcg@10"] == 1.0
