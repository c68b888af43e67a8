"""How the request path scores a LightGBM model: compiled to native code (lleaves) when a
cache directory for the object code is given, else through its exported ONNX graph.

Either way a scorer maps rows (n, features) to one number per row: P(class 1) for a
binary classifier, the raw score for a ranker. Tests hold the two to the same numbers.
A grouped scorer takes rows in groups that share their leading columns (one user's
candidate offers), which the compiled trees use to evaluate some trees once per group
(models/split_trees.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from models.compiled_trees import CompiledTrees
from models.registry import ModelVersion
from models.split_trees import SplitTrees
from models.tree_graph import TreeGraph

TreeScorer = Callable[[np.ndarray], np.ndarray]
# rows (n, features) in groups, each group's count of rows (SplitTrees.predict)
GroupedScorer = Callable[[np.ndarray, np.ndarray], np.ndarray]
Scorer = TypeVar("Scorer", TreeScorer, GroupedScorer)
logger = logging.getLogger(__name__)


def onnx_scorer(graph: bytes, features: int) -> TreeScorer:
    """The last output column: P(class 1) of (n, 2) probabilities, or (n, 1) scores."""
    session = TreeGraph(graph, features)
    return lambda rows: session.run(rows)[:, -1].astype(np.float64)


def compiled_scorer(model_text: bytes, features: int, cache_dir: Path) -> TreeScorer:
    trees = CompiledTrees(model_text, cache_dir)
    _check_features(trees.features, features)
    return trees.predict


def grouped_compiled_scorer(model_text: bytes, features: int, shared: int,
                            cache_dir: Path) -> GroupedScorer:
    """A binary classifier's P(class 1) for rows whose groups share their first `shared`
    columns."""
    trees = SplitTrees(model_text, shared, cache_dir)
    _check_features(trees.features, features)
    return trees.predict


def _check_features(found: int, features: int) -> None:
    if found != features:
        raise ValueError(f"the model takes {found} features, expected {features}")


def tree_scorer(model: ModelVersion, name: str, features: int,
                compiled: Path | None) -> TreeScorer:
    """`{name}.txt` compiled into `compiled` (a cache directory), or `{name}.onnx`."""
    return _compiled_or_graph(
        model, name, compiled, lambda text, cache: compiled_scorer(text, features, cache),
        lambda graph: onnx_scorer(graph, features))


def grouped_scorer(model: ModelVersion, name: str, features: int, shared: int,
                   compiled: Path | None) -> GroupedScorer:
    """`tree_scorer` for rows in groups that share their first `shared` columns."""
    def whole(graph: bytes) -> GroupedScorer:
        score = onnx_scorer(graph, features)
        return lambda rows, counts: score(rows)

    return _compiled_or_graph(
        model, name, compiled,
        lambda text, cache: grouped_compiled_scorer(text, features, shared, cache), whole)


def _compiled_or_graph(model: ModelVersion, name: str, compiled: Path | None,
                       compile_text: Callable[[bytes, Path], Scorer],
                       load_graph: Callable[[bytes], Scorer]) -> Scorer:
    """`{name}.txt` compiled into `compiled` (a cache directory), or `{name}.onnx`: also
    when compiling fails (an unwritable cache, a CPU the compiler cannot target), which is
    logged, as the graph gives the same answers, only slower."""
    if compiled is not None:
        try:
            return compile_text(model.artifact(f"{name}.txt"), compiled)
        except (OSError, RuntimeError) as error:
            logger.warning("could not compile %s of model version %s (%s): scoring it with "
                           "onnxruntime", name, model.version, error)
    return load_graph(model.artifact(f"{name}.onnx"))


def score_each(score: TreeScorer, matrices: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each matrix's scores, from one call of `score` on all their rows: a row's score
    does not depend on the rows beside it, and many users' rows cost one call's overhead."""
    if len(matrices) <= 1:
        return [score(matrix) for matrix in matrices]
    scores = score(np.concatenate(matrices))
    return np.split(scores, np.cumsum([len(matrix) for matrix in matrices[:-1]]))
