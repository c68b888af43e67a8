"""The LightGBM fits the models share: a LambdaRank ranker of keys per user, and a binary
classifier whose thresholds are float32-exact so ONNX gives the same answers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import lightgbm as lgb
import numpy as np
import polars as pl

from training.onnx_export import classifier_to_onnx, float32_thresholds

# 75 trees at 0.1 rank as well as 150 at 0.05 did, with half the code run per decision
# (docs/benchmarks.md, "The rankers at 75 trees and the offer model at 150")
RANKER_PARAMETERS: dict[str, Any] = {
    "objective": "lambdarank", "n_estimators": 75, "learning_rate": 0.1, "num_leaves": 15,
    "min_child_samples": 50, "deterministic": True, "force_row_wise": True, "n_jobs": 2,
    "verbose": -1}


def fit_ranker(signals: pl.DataFrame, labels: pl.DataFrame, names: Sequence[str],
               seed: int) -> lgb.LGBMRanker:
    """`signals` (user_id, key, *names), sorted by user; `labels` (user_id, key) relevant."""
    target = signals.join(labels.with_columns(label=pl.lit(1)), on=["user_id", "key"],
                          how="left")["label"].fill_null(0).to_numpy()
    groups = signals.group_by("user_id", maintain_order=True).len()["len"].to_numpy()
    model = lgb.LGBMRanker(**RANKER_PARAMETERS, random_state=seed)
    model.fit(signals.select(names).to_numpy(), target, group=groups, feature_name=list(names))
    return model


def fit_classifier(matrix: np.ndarray, target: np.ndarray, names: Sequence[str],
                   parameters: dict[str, Any], seed: int,
                   weights: np.ndarray | None = None) -> lgb.Booster:
    model = lgb.LGBMClassifier(**parameters, random_state=seed)
    model.fit(matrix, target, sample_weight=weights, feature_name=list(names))
    return float32_thresholds(model.booster_)


@dataclass(frozen=True)
class BinaryModel:
    """A fitted classifier over the named columns FEATURES of a frame."""

    FEATURES: ClassVar[tuple[str, ...]]
    booster: lgb.Booster

    @classmethod
    def matrix(cls, frame: pl.DataFrame) -> np.ndarray:
        return frame.select(cls.FEATURES).to_numpy().astype(np.float32)

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        return np.asarray(self.booster.predict(self.matrix(frame)), dtype=np.float64)

    def to_onnx(self) -> bytes:
        """float32 `features` (n x len(FEATURES)) -> `probabilities` (n x 2)."""
        return classifier_to_onnx(self.booster, len(self.FEATURES))
