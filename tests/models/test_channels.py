import pytest

from features.pipeline import BatchFeatures
from features.state import UserState
from models.channels import ChannelModel
from tests.conftest import SplitWorld

SAMPLED = 50


def test_per_user_rates_equal_the_batch_ones(full_batch: BatchFeatures) -> None:
    batch = full_batch
    model = ChannelModel.fit(batch)
    users = batch.counts["channel_sends"]["user_id"].unique().sort().head(SAMPLED).to_list()
    users += batch.users["user_id"].tail(5).to_list()  # some with fewer or no sends
    expected: dict[str, dict[str, float]] = {}
    for user_id, channel, rate in model.rates(batch).iter_rows():
        expected.setdefault(user_id, {})[channel] = rate
    for user_id in users:
        state = batch.state(user_id)
        assert state is not None
        rates = model.rates_for(state, batch.anchor)
        assert rates.keys() == expected[user_id].keys() == model.global_rates.keys()
        assert rates == pytest.approx(expected[user_id], rel=1e-9)


def test_an_unknown_user_gets_the_global_rates(split_world: SplitWorld) -> None:
    model = ChannelModel.fit(split_world.full)
    anchor = split_world.full.anchor
    assert model.rates_for(UserState("nobody", anchor), anchor) == pytest.approx(
        model.global_rates, rel=1e-12)


def test_the_fitted_model_round_trips_through_json(split_world: SplitWorld) -> None:
    model = ChannelModel.fit(split_world.full)
    assert ChannelModel.from_json(model.to_json()) == model
