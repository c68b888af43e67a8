"""How the request path scores a LightGBM model: compiled to native code (lleaves) when a
cache directory for the object code is given, else through its exported ONNX graph.

Either way a scorer maps rows (n, features) to one number per row: P(class 1) for a
binary classifier, the raw score for a ranker. Tests hold the two to the same numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from models.compiled_trees import CompiledTrees
from models.registry import ModelVersion
from models.tree_graph import TreeGraph

TreeScorer = Callable[[np.ndarray], np.ndarray]
logger = logging.getLogger(__name__)


def onnx_scorer(graph: bytes, features: int) -> TreeScorer:
    """The last output column: P(class 1) of (n, 2) probabilities, or (n, 1) scores."""
    session = TreeGraph(graph, features)
    return lambda rows: session.run(rows)[:, -1].astype(np.float64)


def compiled_scorer(model_text: bytes, features: int, cache_dir: Path) -> TreeScorer:
    trees = CompiledTrees(model_text, cache_dir)
    if trees.features != features:
        raise ValueError(f"the model takes {trees.features} features, expected {features}")
    return trees.predict


def tree_scorer(model: ModelVersion, name: str, features: int,
                compiled: Path | None) -> TreeScorer:
    """`{name}.txt` compiled into `compiled` (a cache directory), or `{name}.onnx`: also
    when compiling fails (an unwritable cache, a CPU the compiler cannot target), which is
    logged, as the graph gives the same answers, only slower."""
    if compiled is not None:
        try:
            return compiled_scorer(model.artifact(f"{name}.txt"), features, compiled)
        except (OSError, RuntimeError) as error:
            logger.warning("could not compile %s of model version %s (%s): scoring it with "
                           "onnxruntime", name, model.version, error)
    return onnx_scorer(model.artifact(f"{name}.onnx"), features)


def score_each(score: TreeScorer, matrices: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each matrix's scores, from one call of `score` on all their rows: a row's score
    does not depend on the rows beside it, and many users' rows cost one call's overhead."""
    if len(matrices) <= 1:
        return [score(matrix) for matrix in matrices]
    scores = score(np.concatenate(matrices))
    return np.split(scores, np.cumsum([len(matrix) for matrix in matrices[:-1]]))
