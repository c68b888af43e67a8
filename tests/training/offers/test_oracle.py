"""The oracle share: 1 when the model knows the truth, and below for worse choices."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from features.contract.offers import Offer
from features.contract.schema import Journey, OfferKind
from models.offer_response import FEATURES
from tests.conftest import SplitWorld
from training.offers.design import design, offer_table, without_offers
from training.offers.model import OfferResponseModel
from training.offers.oracle import offer_value_share, open_offers

OFFERS = [Offer(offer_id="v5", kind=OfferKind.VOUCHER, value=5, cost=5),
          Offer(offer_id="cb", kind=OfferKind.CASHBACK, value=4, cost=1),
          Offer(offer_id="guide", kind=OfferKind.CONTENT, value=0, cost=0),
          Offer(offer_id="winback", kind=OfferKind.VOUCHER, value=20, cost=20,
                journeys=[Journey.WIN_BACK])]


@pytest.fixture(scope="module")
def model() -> OfferResponseModel:
    rng = np.random.default_rng(4)
    n = 20_000
    columns = {name: rng.random(n) for name in FEATURES}
    p = 0.02 + 0.1 * columns["open_rate"] + 0.03 * columns["has_offer"] * columns["aov"]
    frame = pl.DataFrame(columns).with_columns(
        converted=pl.Series((rng.random(n) < p).astype(np.int8)), propensity=pl.lit(0.5))
    return OfferResponseModel.fit(frame, seed=4)


def _truth_from(model: OfferResponseModel, split_world: SplitWorld,
                noise: float = 0.0) -> pl.DataFrame:
    batch = split_world.full
    candidates = open_offers(OFFERS, batch.anchor)
    rows = batch.users.select("user_id").join(pl.DataFrame(
        {"offer_id": [o.offer_id for o in candidates]}), how="cross").with_columns(
        channel=pl.lit("email"), journey=pl.lit(None, dtype=pl.String),
        local_hour=pl.lit(10, dtype=pl.Int16), weekend=pl.lit(0, dtype=pl.Int8))
    frame = design(rows, batch, offer_table(candidates))
    rng = np.random.default_rng(1)
    with_offer = model.predict(frame) + noise * rng.standard_normal(frame.height)
    return rows.select("user_id", "offer_id").with_columns(
        p_convert_with=pl.Series(np.clip(with_offer, 0, 1)),
        p_convert_without=pl.Series(model.predict(without_offers(frame))))


def test_a_model_that_knows_the_truth_captures_all_of_it(
        model: OfferResponseModel, split_world: SplitWorld) -> None:
    truth = _truth_from(model, split_world)
    result = offer_value_share(model, split_world.full, OFFERS, truth)
    assert result["offer_value_share"] == pytest.approx(1.0)
    assert result["offer_value_share_random"] < 1.0
    assert result["offer_users"] == split_world.full.users.height


def test_a_wrong_truth_lowers_the_share(model: OfferResponseModel,
                                        split_world: SplitWorld) -> None:
    truth = _truth_from(model, split_world, noise=0.05)
    assert offer_value_share(model, split_world.full, OFFERS, truth)["offer_value_share"] < 1.0


def test_journey_offers_are_not_candidates(split_world: SplitWorld) -> None:
    assert [o.offer_id for o in open_offers(OFFERS, split_world.full.anchor)] == [
        "v5", "cb", "guide"]


def test_the_traits_known_policy_is_scored_when_the_truth_has_expected_uplifts(
        model: OfferResponseModel, split_world: SplitWorld) -> None:
    truth = _truth_from(model, split_world)
    assert "offer_value_share_traits_known" not in offer_value_share(
        model, split_world.full, OFFERS, truth)
    exact = truth.with_columns(
        expected_uplift=pl.col("p_convert_with") - pl.col("p_convert_without"))
    assert offer_value_share(model, split_world.full, OFFERS, exact)[
        "offer_value_share_traits_known"] == pytest.approx(1.0)
    misled = truth.with_columns(  # believes the voucher works wonders
        expected_uplift=pl.when(pl.col("offer_id") == "v5").then(0.5).otherwise(0.0))
    assert offer_value_share(model, split_world.full, OFFERS, misled)[
        "offer_value_share_traits_known"] < 1.0
