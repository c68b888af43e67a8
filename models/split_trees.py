"""A binary LightGBM model scored for groups of rows that share their leading columns.

The offer model scores each user's candidate offers as rows that repeat the user's and the
context's columns and differ only in the offer's (models/offer_response.py). A tree that
splits on none of the offer's columns gives every row of one user the same value, so it
needs evaluating once per user, not once per offer. `split_model` parts the forest into
the trees that read only the shared leading columns and the others; `SplitTrees` compiles
both, evaluates the first part on one row per group and the second on every row, and adds
the two raw scores before the sigmoid: the same probabilities as the whole model, up to
the order of a float64 sum. In the benchmark's served offer model 64 of the 150 trees read
only the user and context (docs/api.md), which cuts its trees' work by that share.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from models.compiled_trees import CompiledTrees

_SIGMOID = re.compile(r"^objective=binary sigmoid:(\S+)$", re.MULTILINE)
_TREE = re.compile(r"^Tree=\d+\n", re.MULTILINE)
_SPLITS = re.compile(r"^split_feature=(.*)$", re.MULTILINE)
_SIZES = re.compile(r"^tree_sizes=.*$", re.MULTILINE)
_END = "end of trees"


def split_model(model_text: bytes, shared: int) -> tuple[bytes, bytes]:
    """Two model texts of the same header: the trees whose splits read only columns below
    `shared` (a tree of one leaf reads none), and the other trees, in their order."""
    text = model_text.decode()
    starts = [found.start() for found in _TREE.finditer(text)]
    end = text.index(_END, starts[-1]) if starts else text.index(_END)
    head, tail = text[:starts[0] if starts else end], text[end:]
    trees = [text[a:b] for a, b in zip(starts, [*starts[1:], end], strict=True)]
    leading: list[str] = []
    others: list[str] = []
    for tree in trees:
        (leading if max(_split_columns(tree), default=-1) < shared else others).append(tree)
    return _model(head, leading, tail), _model(head, others, tail)


def _split_columns(tree: str) -> list[int]:
    found = _SPLITS.search(tree)
    return [] if found is None else [int(column) for column in found.group(1).split()]


def _model(head: str, trees: list[str], tail: str) -> bytes:
    """A model text of `trees`, numbered from 0, with the header's `tree_sizes` (each
    tree's length in the text, which lleaves reads to count them) to match."""
    numbered = [_TREE.sub(f"Tree={i}\n", tree, count=1) for i, tree in enumerate(trees)]
    sizes = " ".join(str(len(tree.encode())) for tree in numbered)
    head = _SIZES.sub(f"tree_sizes={sizes}", head, count=1)
    return "".join([head, *numbered, tail]).encode()


class SplitTrees:
    """P(class 1) of a binary LightGBM model, for rows in groups that each share their
    first `shared` columns: the trees reading only those are evaluated once per group.

    The rows come as `offer_rows_of` lays them out: every group's own rows, group after
    group, then one row of each group (a user's no-offer row) in the same order; that last
    row of each group is the one the shared trees read."""

    def __init__(self, model_text: bytes, shared: int, cache_dir: Path) -> None:
        found = _SIGMOID.search(model_text.decode())
        if found is None:
            raise ValueError("only a binary classifier's trees can be split: its "
                             "probability is the sigmoid of the trees' summed scores")
        self._sigmoid = float(found.group(1))
        leading, others = split_model(model_text, shared)
        self._leading = _compiled(leading, cache_dir)
        self._others = _compiled(others, cache_dir)
        self.features = next(trees.features for trees in (self._leading, self._others)
                             if trees is not None)

    def predict(self, rows: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """(n,) probabilities of `rows` (n, features): first `counts[g]` rows of each group
        g, then one more row of each group, all of a group's rows sharing their first
        `shared` columns."""
        rows = np.asarray(rows, dtype=np.float64)  # converted once for both parts
        raw = self._others.predict(rows) if self._others is not None else np.zeros(len(rows))
        groups = len(counts)
        if self._leading is not None and groups:
            per_group = self._leading.predict(rows[-groups:])
            if groups == 1:  # a call for one user
                raw += per_group[0]
            else:
                raw[:-groups] += np.repeat(per_group, counts)
                raw[-groups:] += per_group
        raw *= -self._sigmoid  # P = 1 / (1 + exp(-sigmoid * raw)), in place
        np.exp(raw, out=raw)
        raw += 1.0
        return np.reciprocal(raw, out=raw)


def _compiled(model_text: bytes, cache_dir: Path) -> CompiledTrees | None:
    """The trees compiled to give their summed raw score; None when there are none."""
    if b"\nTree=" not in model_text:
        return None
    return CompiledTrees(model_text, cache_dir, raw_score=True)
