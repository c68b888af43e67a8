"""How good a probability is: discrimination (AUC), log loss, and calibration."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import log_loss, roc_auc_score

CALIBRATION_BINS = 10


def binary_metrics(truth: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    """AUC, log loss (and that of always predicting the base rate), expected calibration
    error over deciles of the prediction, the mean predicted vs observed rate, and the
    deciles themselves (`calibration`: mean predicted, observed rate, count). With one
    outcome only (a small world's test window without a conversion) the AUC is not
    defined: NaN, the rest measured all the same."""
    truth = np.asarray(truth, dtype=np.float64)
    predicted = np.clip(np.asarray(predicted, dtype=np.float64), 1e-7, 1 - 1e-7)
    if not len(truth):
        raise ValueError("no example to measure a binary model on")
    both = len(np.unique(truth)) == 2
    base = np.full(len(truth), np.clip(truth.mean(), 1e-7, 1 - 1e-7))
    return {
        "auc": float(roc_auc_score(truth, predicted)) if both else float("nan"),
        "log_loss": float(log_loss(truth, predicted, labels=[0, 1])),
        "base_rate_log_loss": float(log_loss(truth, base, labels=[0, 1])),
        "calibration_error": calibration_error(truth, predicted),
        "mean_predicted": float(predicted.mean()),
        "observed_rate": float(truth.mean()),
        "examples": float(len(truth)),
        "calibration": calibration_bins(truth, predicted),
    }


def calibration_bins(truth: np.ndarray, predicted: np.ndarray,
                     bins: int = CALIBRATION_BINS) -> list[tuple[float, float, int]]:
    """(mean predicted, observed rate, count) per quantile bin of the prediction."""
    order = np.argsort(predicted, kind="stable")
    return [(float(predicted[part].mean()), float(truth[part].mean()), len(part))
            for part in np.array_split(order, bins) if len(part)]


def calibration_error(truth: np.ndarray, predicted: np.ndarray) -> float:
    """Count-weighted mean |predicted - observed| over the bins."""
    rows = calibration_bins(truth, predicted)
    total = sum(n for _, _, n in rows)
    return float(sum(n * abs(p - o) for p, o, n in rows) / total)
