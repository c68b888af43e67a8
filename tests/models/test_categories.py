"""The category ranker's request-time signals equal the training signals."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import polars as pl
import pytest

from features.pipeline import BatchFeatures
from features.state import UserState
from models.categories import (
    ALS_REGULARIZATION,
    SIGNALS,
    CategoryRanker,
    fold_in,
    fold_in_users,
    regularized_gram,
    top,
)
from models.tree_scoring import compiled_scorer, onnx_scorer
from tests.conftest import SplitWorld
from training.affinity.als import AlsScores, Factorization
from training.affinity.signals import category_popularity, category_signals, interest
from training.boosting import fit_ranker
from training.onnx_export import float32_thresholds, ranker_to_onnx


@pytest.mark.parametrize("factorization", ["als", "bpr"])
def test_served_signals_match_training(split_world: SplitWorld,
                                       factorization: Factorization) -> None:
    batch = split_world.full
    users = batch.users["user_id"].sort().head(60).to_list()
    als = AlsScores.fit(interest(batch), seed=3, factorization=factorization)
    expected = category_signals(batch, users, als)
    labels = expected.filter(pl.col("occasions") > 0).select("user_id", "key")
    model = fit_ranker(expected, labels, SIGNALS, seed=3)
    score = onnx_scorer(ranker_to_onnx(model.booster_, len(SIGNALS)), len(SIGNALS))
    ranker = CategoryRanker.of(score, list(als.keys), als.item_factors,
                               category_popularity(batch))
    served_rows, fitted_als = [], []
    for user in users:
        state = batch.state(user)
        assert state is not None
        mine = expected.filter(pl.col("user_id") == user)
        assert mine["key"].to_list() == list(ranker.categories)
        served_rows.append(ranker.signals(state, batch.anchor, batch.cycles))
        fitted_als.append(mine["als"].to_numpy())
    served = np.vstack(served_rows)
    wanted = expected.select(SIGNALS).to_numpy()
    als_column = SIGNALS.index("als")
    others = [i for i in range(len(SIGNALS)) if i != als_column]
    np.testing.assert_allclose(served[:, others], wanted[:, others], rtol=1e-9, atol=1e-12)
    fitted = np.concatenate(fitted_als)
    if factorization == "bpr":  # users folded in at training as at serving
        np.testing.assert_allclose(served[:, als_column], fitted, rtol=1e-5, atol=1e-8)
    # ALS: the fold-in is one user step against the final item factors, the fit's user
    # factors come from the step before; the scores agree closely, not exactly
    assert np.corrcoef(served[:, als_column], fitted)[0, 1] > 0.95


def _fitted(batch: BatchFeatures) -> tuple[AlsScores, list[str], pl.DataFrame,
                                             lgb.LGBMRanker]:
    """ALS, 80 users, their signals and a ranker fitted on them."""
    als = AlsScores.fit(interest(batch), seed=3)
    users = batch.users["user_id"].sort().head(80).to_list()
    signals = category_signals(batch, users, als)
    model = fit_ranker(signals, signals.filter(pl.col("occasions") > 0).select(
        "user_id", "key"), SIGNALS, seed=3)
    return als, users, signals, model


def test_rank_returns_the_best_n_in_order(split_world: SplitWorld) -> None:
    batch = split_world.full
    als, users, _, model = _fitted(batch)
    score = onnx_scorer(ranker_to_onnx(model.booster_, len(SIGNALS)), len(SIGNALS))
    ranker = CategoryRanker.of(score, list(als.keys), als.item_factors,
                               category_popularity(batch))
    state = batch.state(users[0])
    assert state is not None
    ranked = ranker.rank(state, batch.anchor, batch.cycles, 5)
    assert len(ranked) == 5 and [s for _, s in ranked] == sorted((s for _, s in ranked),
                                                                  reverse=True)
    everything = ranker.rank(state, batch.anchor, batch.cycles, 100)
    assert ranked == everything[:5] and len(everything) == len(ranker.categories)
    states = [batch.state(user) or UserState(user, batch.anchor) for user in users[:40]]
    assert ranker.rank_of(states, batch.anchor, batch.cycles, 5) == [  # in one call
        ranker.rank(state, batch.anchor, batch.cycles, 5) for state in states]
    np.testing.assert_array_equal(  # NaN where training has nulls, for each user alike
        ranker.signals_of(states, batch.anchor, batch.cycles),
        [ranker.signals(state, batch.anchor, batch.cycles) for state in states])


def test_the_served_scorers_score_as_lightgbm(split_world: SplitWorld, tmp_path: Path) -> None:
    _, _, signals, model = _fitted(split_world.full)
    graph = onnx_scorer(ranker_to_onnx(model.booster_, len(SIGNALS)), len(SIGNALS))
    compiled = compiled_scorer(model.booster_.model_to_string().encode(), len(SIGNALS),
                               tmp_path)
    rows = signals.select(SIGNALS).to_numpy().astype(np.float32)
    assert np.isnan(rows).any()  # missing signals take LightGBM's default branches too
    native = float32_thresholds(model.booster_).predict(rows.astype(np.float64))
    np.testing.assert_allclose(graph(rows), native, rtol=0, atol=1e-5)
    np.testing.assert_allclose(compiled(rows), native, rtol=0, atol=1e-9)


def test_users_folded_in_together_are_each_folded_in_alone() -> None:
    rng = np.random.default_rng(5)
    items = rng.normal(size=(12, 4))
    gram = regularized_gram(items)
    users = [(rng.choice(12, size=size, replace=False), rng.uniform(0.5, 9.0, size))
             for size in (0, 3, 1, 0, 5, 2, 0)]
    together = fold_in_users(items, gram, np.cumsum([0, *(len(rows) for rows, _ in users)]),
                             np.concatenate([rows for rows, _ in users]),
                             np.concatenate([confidence for _, confidence in users]))
    for user, (rows, confidence) in enumerate(users):
        np.testing.assert_array_equal(together[user], fold_in(items, gram, rows, confidence))
        every = np.ones(len(items))  # confidence 1 and preference 0 where not observed
        every[rows] = confidence
        preference = np.isin(np.arange(len(items)), rows).astype(np.float64)
        plain = np.linalg.solve(items.T @ np.diag(every) @ items
                                + ALS_REGULARIZATION * np.eye(4),
                                items.T @ (every * preference))
        np.testing.assert_allclose(together[user], plain, rtol=1e-9, atol=1e-12)
    assert fold_in_users(items, gram, np.array([0]), np.array([], dtype=int),
                         np.array([])).shape == (0, 4)


def test_a_system_that_is_not_positive_definite_is_still_solved() -> None:
    """Confidences are positive, which makes every user's system positive definite; were
    one not (a negative weight here), the general solve answers instead of Cholesky."""
    rng = np.random.default_rng(6)
    items = rng.normal(size=(12, 4))
    gram = regularized_gram(items)
    rows, confidence = np.array([2, 7]), np.array([-5.0, 3.0])
    system = gram + items[rows].T @ ((confidence - 1.0)[:, None] * items[rows])
    assert np.linalg.eigvalsh(system).min() < 0
    np.testing.assert_allclose(fold_in(items, gram, rows, confidence),
                               np.linalg.solve(system, items[rows].T @ confidence),
                               rtol=1e-12, atol=1e-12)


def test_top_breaks_ties_in_key_order() -> None:
    assert top(["a", "b", "c"], np.array([1.0, 1.0, 0.5]), 2) == [("a", 1.0), ("b", 1.0)]
    assert top(["a", "b", "c"], np.array([0.5, 1.0, 1.0]), 3) == [
        ("b", 1.0), ("c", 1.0), ("a", 0.5)]
