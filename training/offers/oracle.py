"""How much of the oracle's incremental value the trained offer model's choices capture.

On a synthetic world the truth gives, per user and offer, P(convert) with and without it.
For each user at the evaluation cut, the model picks the offer with the highest expected
value (models/offer_response.py `expected_value`, as the decision engine does: none when
every offer loses money, `worth_offering`); the oracle picks by the true value. Both
picks are scored by the true value; the share is the model's total over the oracle's.
Baselines: a random offer, and always the most generous one. When the truth also gives
each user's expected uplift (what their traits say before the generator draws which kinds
of offer they react to and how strongly), the policy choosing by it is scored too: the
best any policy can do without observing those draws, so the ceiling of a model.

Candidates are the offers any user may get outside journeys (no journey and no lifecycle
restriction), valid at the cut; the context is an email at 10:00 on a weekday.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl

from features.contract.offers import Offer
from features.pipeline import BatchFeatures
from models.offer_response import expected_value, worth_offering
from training.offers.design import design, offer_table, without_offers
from training.offers.model import OfferResponseModel

MAX_USERS = 5_000
ORDER_MARGIN = 0.3  # the API's defaults (NBO_ORDER_MARGIN, NBO_DEFAULT_ORDER_VALUE)
DEFAULT_ORDER_VALUE = 40.0


def open_offers(offers: list[Offer], moment: datetime) -> list[Offer]:
    return [o for o in offers if not o.journeys and not o.eligibility.lifecycle_stages
            and not o.eligibility.segments and o.is_valid_at(moment)]


def offer_value_share(model: OfferResponseModel, batch: BatchFeatures, offers: list[Offer],
                      truth: pl.DataFrame, seed: int = 0) -> dict[str, float]:
    """`truth`: (user_id, offer_id, p_convert_with, p_convert_without[, expected_uplift])."""
    candidates = open_offers(offers, batch.anchor)
    users = sorted(set(batch.users["user_id"]) & set(truth["user_id"]))
    rng = np.random.default_rng(seed)
    if len(users) > MAX_USERS:
        users = sorted(rng.choice(users, MAX_USERS, replace=False).tolist())
    if not candidates or not users:
        return {}
    rows = pl.DataFrame({"user_id": users}).join(
        pl.DataFrame({"offer_id": [o.offer_id for o in candidates]}), how="cross").with_columns(
        channel=pl.lit("email"), journey=pl.lit(None, dtype=pl.String),
        local_hour=pl.lit(10, dtype=pl.Int16), weekend=pl.lit(0, dtype=pl.Int8))
    known = [c for c in ("p_convert_with", "p_convert_without", "expected_uplift")
             if c in truth.columns]
    frame = design(rows, batch, offer_table(candidates)).join(
        truth.select("user_id", "offer_id", *known), on=["user_id", "offer_id"], how="left")
    n_users, n_offers = len(users), len(candidates)
    cost = frame["offer_cost"].to_numpy().reshape(n_users, n_offers)
    order_value = np.where(frame["aov"].to_numpy() > 0, frame["aov"].to_numpy(),
                           DEFAULT_ORDER_VALUE).reshape(n_users, n_offers)
    predicted = expected_value(model.predict(frame).reshape(n_users, n_offers),
                               model.predict(without_offers(frame)).reshape(n_users, n_offers),
                               cost, order_value, ORDER_MARGIN)
    without = frame["p_convert_without"].fill_null(0.0).to_numpy().reshape(n_users, n_offers)
    true = expected_value(frame["p_convert_with"].fill_null(0.0).to_numpy().reshape(
        n_users, n_offers), without, cost, order_value, ORDER_MARGIN)

    def captured(scores: np.ndarray, abstain: bool = True) -> float:
        pick = scores.argmax(axis=1)
        value = true[np.arange(n_users), pick]
        return float(np.where(worth_offering(scores.max(axis=1)), value, 0.0).sum() if abstain
                     else value.sum())

    oracle = captured(true)
    generous = np.tile(np.array([o.value for o in candidates]), (n_users, 1))
    shares = {"offer_value_share": captured(predicted) / oracle,
              "offer_value_share_random": float(true.mean(axis=1).sum()) / oracle,
              "offer_value_share_most_generous": captured(generous, abstain=False) / oracle,
              "offer_oracle_value_per_user": oracle / n_users,
              "offer_users": float(n_users)}
    if "expected_uplift" in frame.columns:
        expected = frame["expected_uplift"].fill_null(0.0).to_numpy().reshape(n_users, n_offers)
        shares["offer_value_share_traits_known"] = captured(expected_value(
            without + expected, without, cost, order_value, ORDER_MARGIN)) / oracle
    return shares
