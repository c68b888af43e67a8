"""LightGBM binary classifiers to ONNX, with the same answers as LightGBM itself.

onnxruntime's tree ensembles keep split thresholds as float32 while LightGBM keeps
doubles, so an input lying between the two takes different branches. `float32_thresholds`
rounds every threshold down to a float32 first, which changes nothing for float32 inputs
(for them `x <= t` and `x <= t rounded down` agree), so native and ONNX predictions match.
The graph keeps only the probability output: the label output's declared shape makes
onnxruntime log a warning on every call.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import onnx
from onnxmltools import convert_lightgbm
from onnxmltools.convert.common.data_types import FloatTensorType

ONNX_OPSET = 15


def float32_thresholds(booster: lgb.Booster) -> lgb.Booster:
    """The same trees with each split threshold rounded down to a float32."""
    lines = []
    for line in booster.model_to_string().splitlines():
        if line.startswith("tree_sizes="):
            continue  # byte offsets of the trees, which change; LightGBM reads on without
        if line.startswith("threshold="):
            exact = np.array(line.removeprefix("threshold=").split(), dtype=np.float64)
            nearest = exact.astype(np.float32)
            down = np.where(nearest.astype(np.float64) > exact,
                            np.nextafter(nearest, np.float32(-np.inf)), nearest)
            line = "threshold=" + " ".join(repr(float(value)) for value in down)
        lines.append(line)
    return lgb.Booster(model_str="\n".join(lines) + "\n")


def _graph(booster: lgb.Booster, features: int, keep: str | None) -> bytes:
    """float32 `features` (n x features) -> the output named `keep` (or the only one)."""
    graph = convert_lightgbm(booster, initial_types=[
        ("features", FloatTensorType([None, features]))], zipmap=False,
        target_opset=ONNX_OPSET)
    outputs = graph.graph.output
    for output in [o for o in outputs if keep is not None and o.name != keep]:
        outputs.remove(output)
    graph.graph.name = "trees"  # the converter names it with a random uuid: same fit, same bytes
    onnx.checker.check_model(graph)
    return bytes(graph.SerializeToString())


def classifier_to_onnx(booster: lgb.Booster, features: int) -> bytes:
    """float32 `features` (n x features) -> `probabilities` (n x 2); `booster`'s
    thresholds must already be float32-exact (training/boosting.py fits them so)."""
    return _graph(booster, features, "probabilities")


def ranker_to_onnx(booster: lgb.Booster, features: int) -> bytes:
    """float32 `features` (n x features) -> scores (n x 1), from a ranker's trees with
    their thresholds made float32-exact first."""
    return _graph(float32_thresholds(booster), features, None)
