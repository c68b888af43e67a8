import numpy as np
import onnxruntime as ort
import polars as pl
import pytest

from models.offer_response import FEATURES
from training.binary_metrics import binary_metrics
from training.offers.model import OfferResponseModel, soft_fit


@pytest.fixture(scope="module")
def known() -> tuple[pl.DataFrame, OfferResponseModel]:
    """Conversion = 2% + 10% x open rate, +5 points with a voucher, nothing with cashback."""
    rng = np.random.default_rng(7)
    n = 40_000
    columns = {name: np.zeros(n) for name in FEATURES}
    columns["open_rate"] = rng.random(n)
    columns["local_hour"] = rng.integers(0, 24, n).astype(float)
    arm = rng.integers(0, 3, n)  # none, voucher, cashback
    columns["has_offer"] = (arm > 0).astype(float)
    columns["kind_voucher"] = (arm == 1).astype(float)
    columns["kind_cashback"] = (arm == 2).astype(float)
    columns["offer_value"] = np.where(arm > 0, 5.0, 0.0)
    columns["offer_cost"] = np.where(arm > 0, 5.0, 0.0)
    columns["offer_category_interest"] = columns["has_offer"]
    p = 0.02 + 0.10 * columns["open_rate"] + 0.05 * columns["kind_voucher"]
    frame = pl.DataFrame(columns).with_columns(
        converted=pl.Series((rng.random(n) < p).astype(np.int8)),
        propensity=pl.lit(1 / 3))
    return frame, OfferResponseModel.fit(frame, seed=1)


def test_the_model_finds_the_known_uplift(known: tuple[pl.DataFrame, OfferResponseModel]) -> None:
    frame, model = known
    uplift = model.uplift(frame)
    voucher, cashback = frame["kind_voucher"] > 0, frame["kind_cashback"] > 0
    assert uplift[voucher.to_numpy()].mean() == pytest.approx(0.05, abs=0.015)
    assert abs(uplift[cashback.to_numpy()].mean()) < 0.015
    metrics = binary_metrics(frame["converted"].to_numpy(), model.predict(frame))
    assert metrics["auc"] > 0.6 and metrics["calibration_error"] < 0.01


def test_no_offer_lowers_the_chance_to_convert() -> None:
    """Whatever the data, an offer's row scores at least the no-offer row."""
    rng = np.random.default_rng(5)
    n = 5_000
    columns = {name: rng.random(n) for name in FEATURES}
    columns["has_offer"] = (rng.random(n) < 0.6).astype(float)
    for name in FEATURES[FEATURES.index("has_offer") + 1:]:
        columns[name] *= columns["has_offer"]
    p = 0.05 + 0.1 * columns["open_rate"] - 0.04 * columns["kind_voucher"]  # offers that hurt
    frame = pl.DataFrame(columns).with_columns(
        converted=pl.Series((rng.random(n) < p).astype(np.int8)))
    model = OfferResponseModel.fit(frame, seed=3)
    assert model.uplift(frame).min() >= 0.0


def test_the_cost_and_the_minimum_order_are_not_read(
        known: tuple[pl.DataFrame, OfferResponseModel]) -> None:
    frame, model = known
    moved = frame.with_columns(offer_cost=pl.lit(99.0), offer_min_order=pl.lit(250.0))
    np.testing.assert_array_equal(model.predict(moved), model.predict(frame))


def test_a_soft_fit_follows_the_probabilities_it_is_given() -> None:
    rng = np.random.default_rng(2)
    n = 5_000
    matrix = np.zeros((n, len(FEATURES)), dtype=np.float32)
    matrix[:, FEATURES.index("open_rate")] = rng.random(n)
    matrix[:, FEATURES.index("has_offer")] = rng.integers(0, 2, n)
    probability = 0.01 + 0.05 * matrix[:, FEATURES.index("open_rate")] * (
        1 + matrix[:, FEATURES.index("has_offer")])
    fitted = soft_fit(matrix, probability, seed=0).predict(matrix)
    assert np.abs(fitted - probability).max() < 0.005


def test_onnx_gives_the_native_probabilities_without_warnings(
        known: tuple[pl.DataFrame, OfferResponseModel], capfd: pytest.CaptureFixture[str]
) -> None:
    frame, model = known
    session = ort.InferenceSession(model.to_onnx(), providers=["CPUExecutionProvider"])
    assert [output.name for output in session.get_outputs()] == ["probabilities"]
    capfd.readouterr()
    for rows in (frame.head(1), frame.head(257), frame):
        features = OfferResponseModel.matrix(rows)
        onnx = session.run(["probabilities"], {"features": features})[0][:, 1]
        assert np.abs(onnx - model.predict(rows)).max() <= 1e-5
    assert capfd.readouterr().err == ""


def test_the_same_seed_gives_the_same_graph(
        known: tuple[pl.DataFrame, OfferResponseModel]) -> None:
    frame, model = known
    assert OfferResponseModel.fit(frame, seed=1).to_onnx() == model.to_onnx()
