import numpy as np
import onnxruntime as ort
import polars as pl
import pytest

from models.offer_response import FEATURES
from training.binary_metrics import binary_metrics
from training.offers.model import OfferResponseModel, propensity_weights


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
    columns["offer_category_interest"] = np.ones(n)
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


def test_propensity_weights_are_capped_and_average_one() -> None:
    weights = propensity_weights(np.array([0.5] * 98 + [0.001, 0.0001]))
    assert weights.mean() == pytest.approx(1.0)
    # 1 / 0.0001 = 10,000 is cut to the 99th percentile, a little above 1 / 0.001
    assert weights[-2] < weights[-1] < 1.2 * weights[-2]
