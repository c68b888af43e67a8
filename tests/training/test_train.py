import json
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
import redis

from models.registry import ModelRegistry
from models.serving import ServingModels
from nbo.errors import DataContractError
from training.synthetic.world import generate_world
from training.train import train


@pytest.mark.slow
def test_the_same_data_and_seed_give_the_same_metrics(tmp_path: Path,
                                                      redis_client: redis.Redis) -> None:
    world = tmp_path / "world"
    generate_world(world, users=500, days=60, seed=8)
    registry = ModelRegistry(tmp_path / "models", redis_client)
    first = train(world, registry, seed=5)
    second = train(world, registry, seed=5)
    assert first.version != second.version
    assert first.metrics == second.metrics
    for name in ("category_ranker.txt", "category_ranker.onnx", "brand_ranker.onnx",
                 "offer_response.txt", "offer_response.onnx", "churn.onnx", "churn.txt",
                 "send_time.json", "item_similar.npz", "item_popularity.json",
                 "category_timing.json"):
        assert first.artifact(name) == second.artifact(name), name
    items = first.metrics["metrics"]["item"]
    assert items["users"] > 0 and items["pairs"] > 0
    served = ServingModels.load(first)
    assert served.items is not None and served.category_timing is not None
    # the priors count every purchase line up to the cut, not the store's last few
    # categories a user (durables bought once dropped out: a country short of its lines)
    end = datetime.fromisoformat(first.meta["split"]["end"])
    bought = (pl.read_parquet(world / "events")
              .filter((pl.col("event_type") == "purchase") & (pl.col("ts") <= end)
                      & pl.col("category").is_not_null()))
    priors = json.loads(first.artifact("category_priors.json"))
    assert set(priors["global"]) == set(bought["category"].unique())
    assert served.categories is not None and served.categories.by_prior("", 100) == sorted(
        priors["global"].items(), key=lambda pair: (-pair[1], pair[0]))


def test_too_short_a_log_is_a_clear_error(tmp_path: Path, redis_client: redis.Redis) -> None:
    world = tmp_path / "world"
    generate_world(world, users=50, days=20, seed=8)
    with pytest.raises(DataContractError, match="training needs at least 35"):
        train(world, ModelRegistry(tmp_path / "models", redis_client))


def test_a_log_too_short_for_the_offer_model_fails_before_any_model_is_fit(
        tmp_path: Path, redis_client: redis.Redis) -> None:
    world = tmp_path / "world"
    generate_world(world, users=50, days=40, seed=8)  # long enough for the other models
    _refused_before_any_fit(world, ModelRegistry(tmp_path / "models", redis_client),
                            "the offer model needs at least 49")


def _refused_before_any_fit(world: Path, registry: ModelRegistry, reason: str) -> None:
    stages: list[str] = []
    with pytest.raises(DataContractError, match=reason):
        train(world, registry, report=stages.append)
    assert stages == ["load"]


def _world_keeping(tmp_path: Path, keep: Callable[[datetime, datetime], pl.Expr]) -> Path:
    """A generated world of 70 days whose events are those `keep(first, last)` selects."""
    world = tmp_path / "world"
    generate_world(world, users=60, days=70, seed=8)
    events = pl.read_parquet(world / "events")
    first, last = events["ts"].min(), events["ts"].max()
    assert isinstance(first, datetime) and isinstance(last, datetime)
    shutil.rmtree(world / "events")
    events.filter(keep(first, last)).write_parquet(world / "events.parquet")
    return world


@pytest.mark.parametrize(("kept", "missing"), [
    ("none", "before the label window or in the label window or in the evaluation window"),
    ("early", "in the label window or in the evaluation window")])
def test_a_log_without_purchases_to_learn_or_score_is_a_clear_error(
        tmp_path: Path, redis_client: redis.Redis, kept: str, missing: str) -> None:
    """The models learn from purchases: without any in a window, training ended in a
    traceback from polars or LightGBM."""
    world = _world_keeping(tmp_path, lambda first, _: (pl.col("event_type") != "purchase") | (
        pl.col("ts") < first + timedelta(days=20) if kept == "early" else pl.lit(False)))
    _refused_before_any_fit(world, ModelRegistry(tmp_path / "models", redis_client),
                            f"no purchase {missing} ")


@pytest.mark.parametrize(("paused", "missing"), [
    ("all", "before .* to learn from nor between then and .* to score on"),
    ("last", "between .* and .* UTC to score on")])
def test_offers_without_sends_to_learn_or_score_are_a_clear_error(
        tmp_path: Path, redis_client: redis.Redis, paused: str, missing: str) -> None:
    """The offer model learns from sends: with none logged (or campaigns paused at the end),
    training ended in a traceback after every other model was fit."""
    world = _world_keeping(tmp_path, lambda _, last: ~(
        pl.col("event_type").str.starts_with("message_")
        & (pl.col("ts") > last - timedelta(days=14) if paused == "last" else pl.lit(True)))
        | (pl.col("ts") == last))
    registry = ModelRegistry(tmp_path / "models", redis_client)
    _refused_before_any_fit(world, registry, f"no message with a channel was sent {missing}")
    (world / "offers.yaml").unlink()  # without offers, the other models train
    assert train(world, registry).version
