import numpy as np
import onnxruntime as ort
import polars as pl

from training.binary_metrics import binary_metrics
from training.churn import FEATURES, ChurnModel


def test_churn_follows_inactivity_and_onnx_agrees() -> None:
    rng = np.random.default_rng(3)
    n = 6000
    frame = pl.DataFrame({name: rng.random(n) for name in FEATURES}).with_columns(
        days_since_seen=pl.Series(rng.uniform(0, 120, n)))
    churned = rng.random(n) < 1 / (1 + np.exp(-(frame["days_since_seen"].to_numpy() - 60) / 10))
    frame = frame.with_columns(churned=pl.Series(churned.astype(np.int8)))
    model = ChurnModel.fit(frame, seed=2)
    assert binary_metrics(frame["churned"].to_numpy(), model.predict(frame))["auc"] > 0.85
    session = ort.InferenceSession(model.to_onnx(), providers=["CPUExecutionProvider"])
    onnx = session.run(["probabilities"], {"features": ChurnModel.matrix(frame)})[0][:, 1]
    assert np.abs(onnx - model.predict(frame)).max() <= 1e-5
