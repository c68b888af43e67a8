"""Churn: the probability that a user who has bought before buys nothing in the next
window, next to the rule-based lifecycle stage (which is also one of its inputs).

Fit on the users at `fit_cut` labelled by the label window, evaluated on the users at
`eval_cut` labelled by the evaluation window, against the stage rules alone as a score
(active and loyal < new < at risk < dormant < churned).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from features.activity import ActivitySpan
from features.contract.schema import LifecycleStage
from features.lifecycle import DEFAULT_RULES
from features.pipeline import PURCHASE_PREFIX, BatchFeatures
from features.purchases import PurchaseTally
from models.offer_response import USER_COLUMNS
from training.affinity.categories import purchased
from training.binary_metrics import binary_metrics
from training.boosting import BinaryModel, fit_classifier
from training.cuts import FeaturesAt
from training.offers.design import overall_rates, user_context
from training.split import TimeSplit, between

STAGE_RISK = {LifecycleStage.ACTIVE: 0, LifecycleStage.LOYAL: 0, LifecycleStage.NEW: 1,
              LifecycleStage.AT_RISK: 2, LifecycleStage.DORMANT: 3, LifecycleStage.CHURNED: 4}
FEATURES = (*USER_COLUMNS, "open_rate_all", "conversion_rate_all", "stage_risk",
            "events_per_30d")
PARAMETERS: dict[str, Any] = {
    "objective": "binary", "n_estimators": 200, "learning_rate": 0.05, "num_leaves": 15,
    "min_child_samples": 100, "deterministic": True, "force_row_wise": True, "n_jobs": 2,
    "verbose": -1}


def stage_risks(batch: BatchFeatures) -> pl.DataFrame:
    """(user_id, stage_risk): the rule-based stage at the cut, as an ordinal."""
    p = PURCHASE_PREFIX
    risks = []
    for row in batch.users.iter_rows(named=True):
        tally = PurchaseTally.from_row({name: row[p + name]
                                        for name in PurchaseTally.__dataclass_fields__})
        activity = ActivitySpan(row["first_seen"], row["last_seen"], row["events"])
        stage = DEFAULT_RULES.stage(activity, tally, batch.anchor, row.get("signup_ts"))
        risks.append(STAGE_RISK[stage])
    return batch.users.select("user_id").with_columns(
        stage_risk=pl.Series(risks, dtype=pl.Float64))


def churn_frame(batch: BatchFeatures, later: pl.DataFrame) -> pl.DataFrame:
    """Buyers at the cut with FEATURES and `churned` (no purchase in `later`)."""
    buyers = batch.users.filter(pl.col(PURCHASE_PREFIX + "occasions") > 0).select(
        "user_id", months=pl.max_horizontal(
            (pl.lit(batch.anchor) - pl.col("first_seen")).dt.total_seconds() / 86_400 / 30,
            7 / 30), events=pl.col("events"))
    bought_again = purchased(later).select("user_id").unique().with_columns(
        churned=pl.lit(0, pl.Int8))
    return (buyers.join(user_context(batch), on="user_id", how="left")
            .join(overall_rates(batch), on="user_id", how="left")
            .join(stage_risks(batch), on="user_id", how="left")
            .join(bought_again, on="user_id", how="left")
            .with_columns(events_per_30d=pl.col("events") / pl.col("months"),
                          churned=pl.col("churned").fill_null(1))
            .with_columns(pl.col(*FEATURES).fill_null(0.0)).sort("user_id"))


class ChurnModel(BinaryModel):
    FEATURES = FEATURES

    @classmethod
    def fit(cls, frame: pl.DataFrame, seed: int = 0) -> ChurnModel:
        return cls(fit_classifier(cls.matrix(frame), frame["churned"].to_numpy(), FEATURES,
                                  PARAMETERS, seed))


def evaluate_churn(features: FeaturesAt, split: TimeSplit,
                   seed: int = 0) -> tuple[ChurnModel, dict[str, Any]]:
    events = features.events
    train = churn_frame(features(split.fit_cut), between(events, split.fit_cut, split.eval_cut))
    model = ChurnModel.fit(train, seed)
    test = churn_frame(features(split.eval_cut), between(events, split.eval_cut, split.end))
    truth = test["churned"].to_numpy()
    metrics = binary_metrics(truth, model.predict(test))
    rules = test["stage_risk"].to_numpy()
    metrics["rules_auc"] = binary_metrics(truth, (rules + 0.5) / 5.0)["auc"]
    return model, metrics
