"""The request-time offer rows equal the training design for the same user and moment."""

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
import polars as pl
import pytest
import redis

from features.contract.offers import Offer
from features.contract.schema import OfferKind
from features.pipeline import BatchFeatures
from features.state import UserState
from models.offer_response import (
    DRIVERS,
    FEATURES,
    FEATURES_KEY,
    SHARED_COLUMNS,
    OfferMatrix,
    OfferResponseScorer,
    drivers,
    expected_value,
    offer_rows,
    offer_rows_of,
    shared_columns,
    worth_offering,
)
from models.registry import ModelRegistry, ModelVersionError
from models.tree_scoring import grouped_compiled_scorer, onnx_scorer
from tests.conftest import SplitWorld
from training.offers.design import design, offer_table
from training.offers.model import OfferResponseModel
from training.onnx_export import classifier_to_onnx

OFFERS = [
    Offer(offer_id="any-5", kind=OfferKind.VOUCHER, value=5, cost=5, min_order_value=15),
    Offer(offer_id="beauty", kind=OfferKind.CASHBACK, value=6, cost=4,
          categories=["skincare", "haircare", "fragrance"]),
    Offer(offer_id="coffee", kind=OfferKind.CONTENT, value=0, cost=0, categories=["coffee"]),
]
CONTEXTS = [("email", None, 9, False), ("push", "cart_abandoned", 20, True),
            ("sms", "win_back", 0, False)]


def _served(state: UserState, now: datetime, context: tuple[str, str | None, int, bool],
            population: Mapping[str, Mapping[str, float]]) -> np.ndarray:
    rows = np.arange(len(OFFERS))
    return offer_rows(state, now, *context, population, OfferMatrix.of(OFFERS), rows)


def test_served_rows_match_the_training_design(split_world: SplitWorld) -> None:
    batch = split_world.full
    users = batch.users["user_id"].sort().head(40).to_list()
    frame = pl.DataFrame(
        [{"user_id": user, "channel": channel, "journey": journey, "local_hour": hour,
          "weekend": int(weekend), "offer_id": offer.offer_id}
         for user in users for channel, journey, hour, weekend in CONTEXTS
         for offer in OFFERS],
        schema={"user_id": pl.String, "channel": pl.String, "journey": pl.String,
                "local_hour": pl.Int16, "weekend": pl.Int8, "offer_id": pl.String})
    expected = design(frame, batch, offer_table(OFFERS)).select(FEATURES).to_numpy()
    served = []
    for user in users:
        state = batch.state(user)
        assert state is not None
        for context in CONTEXTS:
            served.append(_served(state, batch.anchor, context, batch.engagement)[:-1])
    np.testing.assert_allclose(np.vstack(served), expected.astype(np.float32), rtol=1e-6,
                               atol=1e-6)


def test_the_last_row_is_the_no_offer_arm(split_world: SplitWorld) -> None:
    batch = split_world.full
    user = batch.users["user_id"][0]
    state = batch.state(user)
    assert state is not None
    matrix = _served(state, batch.anchor, CONTEXTS[0], batch.engagement)
    offer_part = dict(zip(FEATURES, matrix[-1], strict=True))
    assert offer_part["has_offer"] == 0 and offer_part["offer_value"] == 0
    assert offer_part["offer_category_interest"] == 0  # as in training: every offer column 0
    assert offer_part["offer_categories_engaged"] == 0
    np.testing.assert_array_equal(matrix[-1, :10], matrix[0, :10])  # the same user columns


def test_an_unknown_user_gets_neutral_rows() -> None:
    now = datetime(2026, 5, 1, tzinfo=UTC)
    population = {"open": {"email": 0.2}, "click": {"email": 0.05},
                  "conversion": {"email": 0.01}}
    matrix = _served(UserState("nobody", now), now, CONTEXTS[0], population)
    columns = dict(zip(FEATURES, matrix[0], strict=True))
    assert columns["days_since_purchase"] == -1 and columns["aov"] == 0
    assert columns["open_rate"] == np.float32(0.2)  # the population's rate
    assert columns["open_rate_all"] == 0  # as in training: no sends, no pooled rate
    assert columns["hour_open_share"] == np.float32(1 / 24)
    assert columns["offer_category_interest"] == 1  # an offer for any category...
    assert columns["offer_categories_engaged"] == 0  # the user has no categories to cover


def test_an_offer_s_categories_are_read_as_a_share_and_as_a_count() -> None:
    """A heavy coffee buyer with some interest in skincare and fragrance: the beauty offer
    has the smaller share of interest but covers more of the user's categories."""
    now = datetime(2026, 5, 1, tzinfo=UTC)
    state = UserState("u1", now, counts={"category_affinity": {
        "coffee": 16.0, "skincare": 2.0, "fragrance": 2.0, "shoes": 0.0}})
    fit = OfferMatrix.of(OFFERS).fit(state, now, np.arange(len(OFFERS)))
    np.testing.assert_allclose(fit, [[1.0, 3.0], [0.2, 2.0], [0.8, 1.0]])


def test_fit_and_naming_for_many_users_are_each_user_s_alone() -> None:
    now = datetime(2026, 5, 1, tzinfo=UTC)
    states = [UserState("heavy", now, counts={"category_affinity": {
                  "coffee": 16.0, "skincare": 2.0, "fragrance": 2.0}}),
              UserState("nothing", now),
              UserState("beauty", now, counts={"category_affinity": {
                  "skincare": 1.0, "toys": 3.0}})]
    matrix = OfferMatrix.of(OFFERS)
    together = matrix.fit_of(states, now)
    for row, state in enumerate(states):
        np.testing.assert_array_equal(together[row], matrix.fit_of([state], now)[0])
    np.testing.assert_allclose(together[0], [[1.0, 3.0], [0.2, 2.0], [0.8, 1.0]])
    np.testing.assert_array_equal(together[1], [[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(together[2], [[1.0, 2.0], [0.25, 1.0], [0.0, 0.0]])
    assert matrix.fit_of([], now).shape == (0, len(OFFERS), 2)
    named = matrix.naming_of([["coffee"], [], ["fragrance", "toys"]])
    assert named.tolist() == [[False, False, True], [False, False, False],
                              [False, True, False]]
    assert matrix.naming(["haircare"]).tolist() == [False, True, False]


def _fitted() -> OfferResponseModel:
    rng = np.random.default_rng(3)
    n = 5_000
    matrix = rng.random((n, len(FEATURES))).astype(np.float32)
    converted = (rng.random(n) < 0.05 + 0.2 * matrix[:, 0]).astype(np.int8)
    return OfferResponseModel.fit(pl.DataFrame(matrix, schema=list(FEATURES)).with_columns(
        converted=pl.Series(converted), propensity=pl.lit(0.5)), seed=2)


def _calls(batch: BatchFeatures, picks: list[np.ndarray]) -> tuple[list[np.ndarray],
                                                                    np.ndarray]:
    """Three users' `offer_rows` of the `picks` offers, each in a context of its own, and
    the same rows for all of them from one call of `offer_rows_of`."""
    offers = OfferMatrix.of(OFFERS)
    calls, shared, fits = [], [], []
    for user, context, rows in zip(batch.users["user_id"][1:4], CONTEXTS, picks, strict=True):
        state = batch.state(user)
        assert state is not None
        calls.append(offer_rows(state, batch.anchor, *context, batch.engagement, offers, rows))
        shared.append(shared_columns(state, batch.anchor, *context, batch.engagement))
        fits.append(offers.fit(state, batch.anchor, rows))
    return calls, offer_rows_of(np.array(shared, dtype=np.float32), offers, picks, fits)


def test_rows_of_many_users_are_each_user_s_offer_rows_then_each_no_offer_row(
        split_world: SplitWorld) -> None:
    picks = [np.array([2, 0]), np.array([], dtype=np.intp), np.arange(len(OFFERS))]
    calls, together = _calls(split_world.full, picks)
    np.testing.assert_array_equal(
        together, np.concatenate([call[:-1] for call in calls] + [call[-1:] for call in calls]))
    assert offer_rows_of(np.zeros((0, SHARED_COLUMNS), dtype=np.float32), OfferMatrix.of(
        OFFERS), [], []).shape == (0, len(FEATURES))


def test_the_scorers_give_the_native_probabilities(split_world: SplitWorld,
                                                   tmp_path: Path) -> None:
    model = _fitted()
    picks = [np.arange(len(OFFERS)), np.array([1]), np.array([], dtype=np.intp)]
    calls, rows = _calls(split_world.full, picks)
    native = model.booster.predict(rows)
    whole = onnx_scorer(model.to_onnx(), len(FEATURES))
    graph = OfferResponseScorer(lambda matrix, _: whole(matrix))
    compiled = OfferResponseScorer(grouped_compiled_scorer(
        model.booster.model_to_string().encode(), len(FEATURES), SHARED_COLUMNS, tmp_path))
    counts = [len(offers) for offers in picks]
    assert np.abs(graph.probabilities(rows, counts) - native).max() <= 1e-5
    assert np.abs(compiled.probabilities(rows, counts) - native).max() <= 1e-9
    for call in calls:  # one user's call alone
        assert np.abs(compiled.probabilities(call) - model.booster.predict(call)).max() <= 1e-9


def test_contributions_add_up_to_the_served_probability(split_world: SplitWorld,
                                                        tmp_path: Path) -> None:
    model = _fitted()
    text = model.booster.model_to_string().encode()
    scorer = OfferResponseScorer(grouped_compiled_scorer(text, len(FEATURES), SHARED_COLUMNS,
                                                         tmp_path), model.booster)
    calls, _ = _calls(split_world.full, [np.arange(len(OFFERS)), np.array([1]),
                                         np.array([0, 2])])
    for rows in calls:
        contributions = scorer.contributions(rows)
        assert contributions.shape == (len(rows), len(FEATURES) + 1)
        served = scorer.probabilities(rows)
        assert np.abs(1 / (1 + np.exp(-contributions.sum(axis=1))) - served).max() <= 1e-6
        found = drivers(rows[0], contributions[[0, -1]])
        uplift = contributions[0, :-1] - contributions[-1, :-1]
        assert [d["feature"] for d in found["uplift"]][:1] == [
            FEATURES[int(np.argmax(np.abs(uplift)))]]
        assert all(d["value"] == round(float(rows[0][FEATURES.index(str(d["feature"]))]), 4)
                   for d in found["p_convert"])
        assert len(found["p_convert"]) <= DRIVERS


def test_a_model_trained_on_other_columns_is_refused(
        tmp_path: Path, redis_client: redis.Redis) -> None:
    model = _fitted()
    registry = ModelRegistry(tmp_path, redis_client)
    older = onnx.load_from_string(classifier_to_onnx(model.booster, len(FEATURES)))
    onnx.helper.set_model_props(older, {FEATURES_KEY: ",".join(FEATURES[:-1])})
    for version, graph in (("marked", model.to_onnx()),
                           ("unmarked", classifier_to_onnx(model.booster, len(FEATURES))),
                           ("older", older.SerializeToString())):
        registry.register({"offer_response.onnx": graph,
                           "offer_response.txt": model.booster.model_to_string().encode()},
                          {}, {}, version=version)
    OfferResponseScorer.load(registry.get("marked"))  # loads
    for refused in ("unmarked", "older"):
        with pytest.raises(ModelVersionError, match="train a new version"):
            OfferResponseScorer.load(registry.get(refused))


def test_an_offer_is_made_unless_it_loses_money() -> None:
    with_offer = np.array([0.015, 0.01, 0.03])  # without any offer: 0.01
    cost = np.array([5.0, 0.0, 0.0])  # a voucher, then two free content blocks
    value = expected_value(with_offer, 0.01, cost, 40.0, 0.3)
    # the voucher's added margin (0.005 x 40 x 0.3) does not pay for its cost on every
    # redemption (0.015 x 5); a content block with no effect the model can see costs
    # nothing and is still made
    np.testing.assert_allclose(value, [0.06 - 0.075, 0.0, 0.24], atol=1e-12)
    assert worth_offering(value).tolist() == [False, True, True]
