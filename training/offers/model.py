"""The offer-response model: P(convert | user, message context, offer), and its uplift.

One LightGBM over the sends with and without offers (an S-learner); the uplift of an offer
is the model's P(convert) with it minus with none. The uplift is a small difference of two
predictions, so three choices keep it from being noise:

- An offer never lowers the chance to convert: P(convert) may only rise with `has_offer`,
  each kind, the offer's value and the user's interest in its categories (monotone
  constraints), so every uplift is >= 0. What the offer costs the business and its minimum
  order are left out (zeroed): rising in them would not be a belief, and a free hand in
  either would let an offer's row fall below the no-offer row.
- MEMBERS models, each growing every tree on a random half of the sends, are averaged: one
  model's uplift is mostly the splits it happened to make. One model of PARAMETERS is then
  fitted to the average's probabilities (on the sends and on each send without its offer),
  so serving scores 300 trees, as before, not MEMBERS x 300.
- Sends are not weighted by 1 / propensity: the logging policy chose among what the
  model sees (channel, hour, journey, the eligible offers, uniformly), and the weights
  only added variance (docs/training.md).

Exported to ONNX for onnxruntime at serving time (training/onnx_export.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import lightgbm as lgb
import numpy as np
import onnx
import polars as pl

from features.contract.offers import Offer
from features.pipeline import BatchFeatures
from models.offer_response import CATEGORY_COLUMNS, FEATURES, FEATURES_KEY, FEATURES_MARK
from training.boosting import BinaryModel, fit_classifier
from training.offers.design import design, offer_table, without_offers
from training.offers.sends import logged_sends
from training.onnx_export import float32_thresholds

MEMBERS = 3
UNUSED = ("offer_cost", "offer_min_order")
RISING = ("has_offer", *(c for c in FEATURES if c.startswith("kind_")), "offer_value",
          *CATEGORY_COLUMNS)
_MONOTONE = [int(name in RISING) for name in FEATURES]
MEMBER_PARAMETERS: dict[str, Any] = {
    "objective": "binary", "n_estimators": 300, "learning_rate": 0.03, "num_leaves": 7,
    "min_child_samples": 200, "reg_lambda": 5.0, "colsample_bytree": 0.8,
    "subsample": 0.5, "subsample_freq": 1, "monotone_constraints": _MONOTONE,
    "deterministic": True, "force_row_wise": True, "n_jobs": 2, "verbose": -1}
# The served model, fitted to the members' average: 150 trees did as well as 300 over 7
# training seeds and worlds (docs/benchmarks.md), at less code run per candidate.
PARAMETERS: dict[str, Any] = {
    "objective": "cross_entropy", "n_estimators": 150, "learning_rate": 0.1, "num_leaves": 15,
    "min_child_samples": 10, "monotone_constraints": _MONOTONE,
    "deterministic": True, "force_row_wise": True, "n_jobs": 2, "verbose": -1}
SETTINGS: dict[str, Any] = {"members": MEMBERS, "member": MEMBER_PARAMETERS,
                            "served": PARAMETERS, "unused": list(UNUSED)}  # for meta.json


def examples(events: pl.DataFrame, users: pl.DataFrame, batch: BatchFeatures,
             offers: list[Offer], stop: datetime) -> pl.DataFrame:
    """The sends after the batch's cut whose attribution window ends by `stop`, designed
    with the user as the batch saw them."""
    sends = logged_sends(events, users, batch.anchor, stop)
    return design(sends, batch, offer_table(offers))


def soft_fit(matrix: np.ndarray, probability: np.ndarray, seed: int) -> lgb.Booster:
    """A model of PARAMETERS fitted to probabilities rather than outcomes, by LightGBM's
    cross-entropy objective: the gradients of each row twice, converted with weight p and
    not with 1 - p, on half the rows (min_child_samples halved to match). It predicts
    sigmoid(raw score) as a binary classifier does, so it is labelled one for ONNX and the
    compiled scorer."""
    model = lgb.LGBMRegressor(**PARAMETERS, random_state=seed)
    model.fit(matrix, probability, feature_name=list(FEATURES))
    text = float32_thresholds(model.booster_).model_to_string()
    return lgb.Booster(model_str=text.replace(  # the trees' header, and the parameters kept
        "objective=cross_entropy", "objective=binary sigmoid:1").replace(
        "[objective: cross_entropy]", "[objective: binary]"))


class OfferResponseModel(BinaryModel):
    FEATURES = FEATURES

    @classmethod
    def fit(cls, frame: pl.DataFrame, seed: int = 0) -> OfferResponseModel:
        matrix = cls.matrix(frame)
        matrix[:, [FEATURES.index(name) for name in UNUSED]] = 0.0
        target = frame["converted"].to_numpy()
        members = [fit_classifier(matrix, target, FEATURES, MEMBER_PARAMETERS,
                                  seed * MEMBERS + member) for member in range(MEMBERS)]
        rows = np.vstack([matrix, cls.matrix(without_offers(frame))])
        mean = np.mean([member.predict(rows, raw_score=True) for member in members], axis=0)
        return cls(soft_fit(rows, 1.0 / (1.0 + np.exp(-mean)), seed))

    def uplift(self, frame: pl.DataFrame) -> np.ndarray:
        """P(convert) with each row's offer minus P(convert) with no offer (>= 0)."""
        return np.asarray(self.predict(frame) - self.predict(without_offers(frame)))

    def to_onnx(self) -> bytes:
        """The graph, marked with the columns it was trained on (models/offer_response.py)."""
        graph = onnx.load_from_string(super().to_onnx())
        onnx.helper.set_model_props(graph, {FEATURES_KEY: FEATURES_MARK})
        return bytes(graph.SerializeToString())
