from datetime import UTC, datetime

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


def test_an_open_rate_is_at_most_one() -> None:
    """Opens whose sends were not seen (or decayed away) cannot make a rate above 1."""
    anchor = datetime(2026, 6, 1, tzinfo=UTC)
    state = UserState("u1", anchor, counts={"channel_opens": {"email": 10.0},
                                            "channel_sends": {"email": 1.0}})
    model = ChannelModel({"email": 0.2, "push": 0.1}, {})
    assert model.rates_for(state, anchor) == {"email": 1.0, "push": 0.1}
