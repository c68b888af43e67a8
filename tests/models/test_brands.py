"""The brand ranker's request-time candidates and signals equal the training ones."""

from __future__ import annotations

import numpy as np
import polars as pl

from features.state import UserState
from models.brands import SIGNALS, BrandRanker
from models.tree_scoring import onnx_scorer
from tests.conftest import SplitWorld
from training.affinity.brands import BrandContext
from training.boosting import fit_ranker
from training.onnx_export import ranker_to_onnx


def test_served_brand_signals_match_training(split_world: SplitWorld) -> None:
    batch = split_world.full
    context = BrandContext.at(batch, split_world.events)
    als = context.als(seed=2)
    users = batch.users["user_id"].sort().head(60).to_list()
    expected = context.signals(users, als)
    labels = expected.filter(pl.col("affinity") > 0).select("user_id", "key")
    model = fit_ranker(expected, labels, SIGNALS, seed=2)
    score = onnx_scorer(ranker_to_onnx(model.booster_, len(SIGNALS)), len(SIGNALS))
    ranker = BrandRanker.of(score, list(als.keys), als.item_factors,
                            context.popularity.to_dicts())
    served_rows, fitted = [], []
    for user in users:
        state = batch.state(user)
        assert state is not None
        mine = expected.filter(pl.col("user_id") == user)
        candidates, matrix = ranker.signals(state, batch.anchor)
        assert candidates == mine["key"].to_list(), user
        served_rows.append(matrix)
        fitted.append(mine["als"].to_numpy())
    served = np.vstack(served_rows)
    wanted = expected.select(SIGNALS).to_numpy()
    np.testing.assert_allclose(served[:, :5], wanted[:, :5], rtol=1e-9, atol=1e-12)
    assert np.corrcoef(served[:, 5], np.concatenate(fitted))[0, 1] > 0.9
    first = batch.state(users[0])
    assert first is not None
    ranked = ranker.rank(first, batch.anchor, 3)
    assert len(ranked) <= 3 and [s for _, s in ranked] == sorted((s for _, s in ranked),
                                                                  reverse=True)
    states = [batch.state(user) or UserState(user, batch.anchor) for user in users]
    states.insert(2, UserState("nobody", batch.anchor))  # no candidates at all
    assert ranker.rank_of(states, batch.anchor, 3) == [  # many users in one call
        ranker.rank(state, batch.anchor, 3) for state in states]
    for (candidates, matrix), state in zip(ranker.signals_of(states, batch.anchor), states,
                                           strict=True):
        alone, its_matrix = ranker.signals(state, batch.anchor)
        assert candidates == alone
        np.testing.assert_array_equal(matrix, its_matrix)
