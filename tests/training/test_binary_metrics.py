"""Metrics of a binary model, including on a test window with one outcome only."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.binary_metrics import binary_metrics


def test_a_window_without_a_conversion_is_measured_but_its_auc() -> None:
    """A small world's test window may hold no conversion: `nbo train` stopped with a
    ValueError on a valid data set."""
    truth, predicted = np.zeros(50), np.linspace(0.01, 0.2, 50)
    metrics = binary_metrics(truth, predicted)
    assert math.isnan(metrics["auc"])
    assert metrics["log_loss"] == pytest.approx(-np.log(1 - predicted).mean())
    assert metrics["observed_rate"] == 0.0 and metrics["examples"] == 50
    both = binary_metrics(np.array([0.0, 1.0, 0.0, 1.0]), np.array([0.1, 0.9, 0.2, 0.8]))
    assert both["auc"] == 1.0
    with pytest.raises(ValueError, match="no example"):
        binary_metrics(np.zeros(0), np.zeros(0))
