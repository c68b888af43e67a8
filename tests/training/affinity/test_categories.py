from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from features.pipeline import load_inputs
from training.affinity.categories import evaluate_category_ranking, fit_category_ranker
from training.cuts import FeaturesAt
from training.split import TimeSplit, up_to
from training.synthetic.world import generate_world


@dataclass(frozen=True)
class World:
    features: FeaturesAt
    split: TimeSplit


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    directory: Path = tmp_path_factory.mktemp("ranking-world")
    generate_world(directory, users=2000, days=60, seed=4)
    events, users, items = load_inputs(directory)
    return World(FeaturesAt(events, users, items), TimeSplit.last_days(events))


def test_the_learned_ranking_beats_both_baselines(world: World) -> None:
    metrics = evaluate_category_ranking(world.features, world.split).metrics
    assert metrics["users"] > 500 and metrics["novel_users"] > 50
    assert metrics["ndcg@10"] > 1.2 * metrics["popularity_ndcg@10"]
    assert metrics["ndcg@10"] > metrics["own_history_ndcg@10"]
    assert metrics["novel_ndcg@10"] > metrics["novel_popularity_ndcg@10"]


def test_training_never_sees_the_evaluation_window(world: World) -> None:
    split, honest_features = world.split, world.features
    honest = fit_category_ranker(honest_features, split)
    # rewrite the evaluation window entirely: the fitted model must not change at all
    events = honest_features.events
    shifted = events.filter(pl.col("ts") > split.eval_cut).with_columns(
        category=pl.lit("toys"), user_id=pl.col("user_id").shuffle(seed=1))
    tampered = FeaturesAt(pl.concat([up_to(events, split.eval_cut), shifted]),
                          honest_features.users, honest_features.items)
    again = fit_category_ranker(tampered, split)
    assert honest.model.booster_.model_to_string() == again.model.booster_.model_to_string()


def test_the_same_data_and_seed_give_the_same_metrics(world: World) -> None:
    short = TimeSplit(world.split.fit_cut + timedelta(days=7), world.split.eval_cut,
                      world.split.end)
    first = evaluate_category_ranking(world.features, short, seed=3).metrics
    second = evaluate_category_ranking(world.features, short, seed=3).metrics
    assert first == second
