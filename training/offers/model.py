"""The offer-response model: P(convert | user, message context, offer), and its uplift.

LightGBM on logged sends, each weighted by 1 / its logged propensity (normalized, capped),
so the actions the logging policy favoured do not dominate what the model learns. The
uplift of an offer is the model's P(convert) with the offer minus without any. Exported to
ONNX for onnxruntime at serving time (training/onnx_export.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from features.contract.offers import Offer
from features.pipeline import BatchFeatures
from models.offer_response import FEATURES
from training.boosting import BinaryModel, fit_classifier
from training.offers.design import design, offer_table, without_offers
from training.offers.sends import logged_sends

WEIGHT_CAP_QUANTILE = 0.99
PARAMETERS: dict[str, Any] = {
    "objective": "binary", "n_estimators": 300, "learning_rate": 0.03, "num_leaves": 7,
    "min_child_samples": 200, "reg_lambda": 5.0, "colsample_bytree": 0.8,
    "deterministic": True,
    "force_row_wise": True, "n_jobs": 2, "verbose": -1}


def propensity_weights(propensity: np.ndarray) -> np.ndarray:
    """1 / propensity, capped at its 99th percentile and scaled to mean 1."""
    inverse = 1.0 / np.clip(np.nan_to_num(propensity, nan=1.0), 1e-6, 1.0)
    inverse = np.minimum(inverse, np.quantile(inverse, WEIGHT_CAP_QUANTILE))
    return np.asarray(inverse / inverse.mean())


def examples(events: pl.DataFrame, users: pl.DataFrame, batch: BatchFeatures,
             offers: list[Offer], stop: datetime) -> pl.DataFrame:
    """The sends after the batch's cut whose attribution window ends by `stop`, designed
    with the user as the batch saw them."""
    sends = logged_sends(events, users, batch.anchor, stop)
    return design(sends, batch, offer_table(offers))


class OfferResponseModel(BinaryModel):
    FEATURES = FEATURES

    @classmethod
    def fit(cls, frame: pl.DataFrame, seed: int = 0) -> OfferResponseModel:
        return cls(fit_classifier(cls.matrix(frame), frame["converted"].to_numpy(), FEATURES,
                                  PARAMETERS, seed,
                                  propensity_weights(frame["propensity"].to_numpy())))

    def uplift(self, frame: pl.DataFrame) -> np.ndarray:
        """P(convert) with each row's offer minus P(convert) with no offer."""
        return np.asarray(self.predict(frame) - self.predict(without_offers(frame)))
