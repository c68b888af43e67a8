"""A binary model's forest parted by the columns its trees read gives the whole model's
probabilities for rows in groups that share their leading columns."""

from __future__ import annotations

import re
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from models.compiled_trees import CompiledTrees
from models.split_trees import SplitTrees, split_model

FEATURES = 6
SHARED = 3  # the leading columns each group's rows share


def _booster(objective: str = "binary") -> lgb.Booster:
    rng = np.random.default_rng(4)
    rows = rng.random((2_000, FEATURES))
    target = rows[:, 0] + rows[:, 4] + 0.3 * rng.standard_normal(len(rows))
    label = (target > 1.0).astype(float) if objective == "binary" else target
    # each tree sees a draw of two columns, so some read only the leading ones
    parameters = {"objective": objective, "num_leaves": 4, "feature_fraction": 0.34,
                  "verbose": -1, "num_threads": 1, "seed": 2}
    return lgb.train(parameters, lgb.Dataset(rows, label), num_boost_round=40)


def _grouped_rows(counts: list[int]) -> np.ndarray:
    """Rows as SplitTrees takes them: each group's `counts` rows, group after group, then
    one more row of each group; a group's rows repeat its leading columns."""
    rng = np.random.default_rng(5)
    groups = np.concatenate([np.repeat(np.arange(len(counts)), counts),
                             np.arange(len(counts))])
    leading = rng.random((len(counts), SHARED))[groups]
    return np.hstack([leading, rng.random((len(groups), FEATURES - SHARED))])


def _split_columns(model_text: bytes) -> list[list[int]]:
    return [[int(column) for column in found.split()] for found in
            re.findall(r"^split_feature=(.*)$", model_text.decode(), re.MULTILINE)]


def test_the_parts_hold_every_tree_once_and_add_up_to_the_whole() -> None:
    booster = _booster()
    whole = booster.model_to_string().encode()
    leading, others = split_model(whole, SHARED)
    first, second = (lgb.Booster(model_str=part.decode()) for part in (leading, others))
    assert first.num_trees() > 0 and second.num_trees() > 0
    assert first.num_trees() + second.num_trees() == booster.num_trees()
    assert all(max(columns) < SHARED for columns in _split_columns(leading))
    assert all(max(columns) >= SHARED for columns in _split_columns(others))
    rows = _grouped_rows([5, 1, 9])
    np.testing.assert_allclose(
        first.predict(rows, raw_score=True) + second.predict(rows, raw_score=True),
        booster.predict(rows, raw_score=True), rtol=0, atol=1e-12)


@pytest.mark.parametrize("shared", [0, SHARED])  # some trees per group, then none
def test_groups_score_as_the_whole_model(tmp_path: Path, shared: int) -> None:
    booster = _booster()
    trees = SplitTrees(booster.model_to_string().encode(), shared, tmp_path)
    counts = [4, 0, 7, 2]
    rows = _grouped_rows(counts)
    native = booster.predict(rows)
    np.testing.assert_allclose(trees.predict(rows, np.array(counts)), native, rtol=0,
                               atol=1e-12)
    heads = len(rows) - len(counts)
    for group, (end, count) in enumerate(zip(np.cumsum(counts), counts, strict=True)):
        alone = np.vstack([rows[end - count:end], rows[heads + group]])  # one group alone
        np.testing.assert_allclose(trees.predict(alone, np.array([count])),
                                   booster.predict(alone), rtol=0, atol=1e-12)
    assert trees.predict(rows[:0], np.array([], dtype=np.intp)).shape == (0,)


def test_every_tree_read_once_per_group_when_all_columns_are_shared(tmp_path: Path) -> None:
    booster = _booster()
    trees = SplitTrees(booster.model_to_string().encode(), FEATURES, tmp_path)
    one_row = _grouped_rows([0])[:1]
    rows = np.repeat(one_row, 5, axis=0)  # a group of identical rows
    np.testing.assert_allclose(trees.predict(rows, np.array([4])), booster.predict(rows),
                               rtol=0, atol=1e-12)


def test_a_model_without_a_sigmoid_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="binary classifier"):
        SplitTrees(_booster("regression").model_to_string().encode(), SHARED, tmp_path)


def test_raw_and_probability_compilations_of_one_model_are_kept_apart(tmp_path: Path) -> None:
    booster = _booster()
    text = booster.model_to_string().encode()
    rows = _grouped_rows([6])
    probability = CompiledTrees(text, tmp_path)
    raw = CompiledTrees(text, tmp_path, raw_score=True)  # the same cache directory
    np.testing.assert_allclose(probability.predict(rows), booster.predict(rows), atol=1e-12)
    np.testing.assert_allclose(raw.predict(rows), booster.predict(rows, raw_score=True),
                               atol=1e-12)
    assert len(list(tmp_path.glob("*.o"))) == 2
