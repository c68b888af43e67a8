import math

from tests.conftest import SplitWorld
from training.cuts import FeaturesAt
from training.price_bands import ServedBands, evaluate_price_bands
from training.split import TimeSplit


def test_the_evaluation_scores_the_served_bands_against_the_baselines(
        split_world: SplitWorld) -> None:
    events = split_world.events
    features = FeaturesAt(events, split_world.users, split_world.items)
    split = TimeSplit.last_days(events, eval_days=7, label_days=7)
    metrics = evaluate_price_bands(features, split)
    assert metrics["lines"] > 50
    rates = {name: value for name, value in metrics.items() if name != "lines"}
    assert set(rates) == {"accuracy", "user_band_accuracy", "category_band_accuracy",
                          "mid_band_accuracy"}
    assert all(0.0 <= value <= 1.0 and not math.isnan(value) for value in rates.values())
    assert metrics["accuracy"] > metrics["mid_band_accuracy"]


def test_served_bands_read_from_the_batch_agree_with_the_users_state(
        split_world: SplitWorld) -> None:
    batch = split_world.early
    served = ServedBands.of(batch)
    users = batch.users["user_id"].to_list()[:60]
    assert any(served.bought.get(user) for user in users)
    for user in users:
        state = batch.state(user)
        assert state is not None
        categories = [*state.category_purchases, "never bought"]
        assert served.user_band(user) == state.price_band(batch.anchor)
        assert served.category_bands(user, categories) == state.category_price_bands(
            batch.anchor, categories)
