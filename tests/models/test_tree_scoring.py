"""A version's tree model, compiled or as its ONNX graph: the same scores either way."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import lleaves
import numpy as np
import pytest
import redis

from models.compiled_trees import CompiledTrees
from models.registry import ModelRegistry, ModelVersion
from models.tree_scoring import score_each, tree_scorer
from training.onnx_export import ranker_to_onnx

FEATURES = 4


def _version(tmp_path: Path, client: redis.Redis) -> tuple[ModelVersion, np.ndarray]:
    rng = np.random.default_rng(1)
    rows = rng.random((400, FEATURES))
    booster = lgb.train({"objective": "regression", "verbose": -1, "num_threads": 1},
                        lgb.Dataset(rows, rows @ np.arange(FEATURES)), num_boost_round=20)
    registry = ModelRegistry(tmp_path / "models", client)
    version = registry.register({"trees.txt": booster.model_to_string().encode(),
                                 "trees.onnx": ranker_to_onnx(booster, FEATURES)}, {}, {})
    return version, rows.astype(np.float32)


def test_compiled_and_graph_agree(tmp_path: Path, redis_client: redis.Redis) -> None:
    version, rows = _version(tmp_path, redis_client)
    compiled = tree_scorer(version, "trees", FEATURES, tmp_path / "compiled")
    graph = tree_scorer(version, "trees", FEATURES, None)
    np.testing.assert_allclose(compiled(rows), graph(rows), rtol=0, atol=1e-5)
    assert any((tmp_path / "compiled").glob("*.o"))  # kept for the next load


def test_a_failed_compile_falls_back_to_the_graph(tmp_path: Path, redis_client: redis.Redis,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    version, rows = _version(tmp_path, redis_client)
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    scorer = tree_scorer(version, "trees", FEATURES, blocked / "compiled")
    np.testing.assert_allclose(scorer(rows), tree_scorer(version, "trees", FEATURES, None)(rows))
    assert "scoring it with onnxruntime" in caplog.text


def test_matrices_scored_together_score_as_each_alone(tmp_path: Path,
                                                     redis_client: redis.Redis) -> None:
    version, rows = _version(tmp_path, redis_client)
    for scorer in (tree_scorer(version, "trees", FEATURES, tmp_path / "compiled"),
                   tree_scorer(version, "trees", FEATURES, None)):
        matrices = [rows[:3], rows[3:3], rows[3:8], rows[8:9]]
        together = score_each(scorer, matrices)
        assert [len(scores) for scores in together] == [3, 0, 5, 1]
        for matrix, scores in zip(matrices, together, strict=True):
            np.testing.assert_array_equal(scores, scorer(matrix))
        assert score_each(scorer, []) == []


def test_compiled_trees_score_as_lleaves_own_predict(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    rows = rng.random((300, FEATURES))
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1},
                        lgb.Dataset(rows, rows[:, 0] + rows[:, 1] > 1.0), num_boost_round=20)
    for raw_score in (False, True):
        trees = CompiledTrees(booster.model_to_string().encode(), tmp_path, raw_score)
        for matrix in (rows, rows[:1], rows[:0], rows[::3], rows.astype(np.float32),
                       np.asfortranarray(rows[:7])):
            expected = trees._model.predict(np.asarray(matrix, dtype=np.float64), n_jobs=1)
            np.testing.assert_array_equal(trees.predict(matrix), expected)
        with pytest.raises(ValueError, match=rf"rows must be \(n, {FEATURES}\)"):
            trees.predict(rows[:, :2])


def test_a_multiclass_model_is_refused(tmp_path: Path) -> None:
    rows = np.random.default_rng(3).random((90, FEATURES))
    booster = lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1,
                         "num_threads": 1}, lgb.Dataset(rows, np.arange(90) % 3),
                        num_boost_round=2)
    with pytest.raises(ValueError, match="a multiclass model"):
        CompiledTrees(booster.model_to_string().encode(), tmp_path)


@pytest.mark.parametrize("damage", ["cut short", "zeros"])
def test_a_damaged_cached_object_is_compiled_again(tmp_path: Path, redis_client: redis.Redis,
                                                   damage: str) -> None:
    """LLVM aborted the whole process on loading a cut-short object (a full disk)."""
    version, rows = _version(tmp_path, redis_client)
    cache = tmp_path / "compiled"
    expected = tree_scorer(version, "trees", FEATURES, cache)(rows)
    (cached,) = cache.glob("*.o")
    whole = cached.read_bytes()
    cached.write_bytes(whole[:len(whole) * 2 // 3] if damage == "cut short"
                       else bytes(len(whole)))
    np.testing.assert_array_equal(tree_scorer(version, "trees", FEATURES, cache)(rows),
                                  expected)
    assert cached.read_bytes() == whole


def test_an_object_written_cut_short_is_not_kept(tmp_path: Path, redis_client: redis.Redis,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """lleaves swallows the error of a write a full disk cuts short: the object is not put
    in the cache, and the graph scores meanwhile."""
    version, rows = _version(tmp_path, redis_client)
    compile_trees = lleaves.Model.compile

    def cut_short(self: lleaves.Model, cache: str, **options: object) -> None:
        compile_trees(self, cache=cache, **options)
        written = Path(cache).read_bytes()
        Path(cache).write_bytes(written[:len(written) // 2])

    monkeypatch.setattr(lleaves.Model, "compile", cut_short)
    scorer = tree_scorer(version, "trees", FEATURES, tmp_path / "compiled")
    np.testing.assert_allclose(scorer(rows), tree_scorer(version, "trees", FEATURES, None)(rows))
    assert "not written whole" in caplog.text
    assert not list((tmp_path / "compiled").glob("**/*.o"))
