from datetime import datetime

import numpy as np
import polars as pl

from features.pipeline import BatchFeatures
from features.state import UserState
from models.send_time import HOURS, SendTimeModel, hourly_activity, hourly_opens
from tests.conftest import SplitWorld

SAMPLED = 50


def _model(split_world: SplitWorld) -> SendTimeModel:
    return SendTimeModel.fit(split_world.full, delay_hours=2)


def _batch_send_hours(model: SendTimeModel, batch: BatchFeatures, users: list[str],
                      channels: list[str]) -> dict[tuple[str, str], int]:
    """(user, channel) -> send hour from the batch frames, as training builds its matrices."""
    pairs = pl.DataFrame({"user_id": users}).join(
        pl.DataFrame({"channel": channels}), how="cross").with_row_index("__pair")
    opened = np.zeros((pairs.height, HOURS))
    cells = pairs.join(hourly_opens(batch), on=["user_id", "channel"])
    np.add.at(opened, (cells["__pair"].to_numpy(), cells["local_hour"].to_numpy()),
              cells["opens"].to_numpy())
    active = np.zeros((pairs.height, HOURS))
    cells = pairs.join(hourly_activity(batch), on="user_id")
    np.add.at(active, (cells["__pair"].to_numpy(), cells["local_hour"].to_numpy()),
              cells["activity"].to_numpy())
    rows = pairs.join(batch.users.select("user_id", "country"), on="user_id",
                      how="left").sort("__pair")
    countries = np.stack([model.country_prior(channel, country) for channel, country
                          in rows.select("channel", "country").iter_rows()])
    hours = model.send_hours(opened, model.priors(rows["channel"].to_list(), countries,
                                                  active))
    return {(user, channel): int(hour) for (user, channel), hour
            in zip(rows.select("user_id", "channel").iter_rows(), hours, strict=True)}


def test_per_user_send_hours_equal_the_batch_ones_alone_or_together(
        full_batch: BatchFeatures) -> None:
    model = SendTimeModel.fit(full_batch, delay_hours=2)
    channels = sorted(model.global_curves)
    opening = hourly_opens(full_batch)["user_id"].unique().sort()
    users = opening.head(SAMPLED // 2).to_list() + full_batch.users.filter(
        ~pl.col("user_id").is_in(opening.implode()))["user_id"].head(SAMPLED // 2).to_list()
    expected = _batch_send_hours(model, full_batch, users, channels)
    now = full_batch.anchor
    states = []
    for user_id in users:
        state = full_batch.state(user_id)
        assert state is not None
        states.append(state)
        hours = model.send_hours_for(state, now, channels)
        assert hours == {channel: expected[user_id, channel] for channel in channels}
    assert len(set(expected.values())) > 1  # users differ, not one global hour
    asked = [(state, channels[:1 + i % len(channels)]) for i, state in enumerate(states)]
    assert model.send_hours_of(asked, now) == [  # many users at once, each their own
        {channel: expected[state.user_id, channel] for channel in some}
        for state, some in asked]
    assert model.send_hours_of([], now) == []


def test_curves_for_are_the_scores_behind_the_send_hours(split_world: SplitWorld) -> None:
    model = _model(split_world)
    channels = sorted(model.global_curves)
    state = split_world.full.state(hourly_opens(split_world.full)["user_id"][0])
    assert state is not None
    now = split_world.full.anchor
    curves = model.curves_for(state, now, channels)
    assert curves.shape == (len(channels), HOURS)
    np.testing.assert_allclose(curves.sum(axis=1), 1.0)
    assert model.send_hours_for(state, now, channels) == {
        channel: (int(np.argmax(curve)) - model.delay_hours) % HOURS
        for channel, curve in zip(channels, curves, strict=True)}


def test_an_unknown_user_gets_the_unknown_countrys_hour(split_world: SplitWorld) -> None:
    model = _model(split_world)
    channels = sorted(model.global_curves)
    anchor = split_world.full.anchor
    hours = model.send_hours_for(UserState("nobody", anchor), anchor, channels)
    assert hours == {channel: (int(np.argmax(model.country_prior(channel, None)))
                               - model.delay_hours) % HOURS for channel in channels}
    assert model.send_hours_for(UserState("nobody", anchor), anchor, []) == {}


def test_a_channel_the_model_never_saw_gets_a_flat_prior(split_world: SplitWorld) -> None:
    model = _model(split_world)
    curves = model.curves_for(UserState("nobody", datetime.now().astimezone()),
                              datetime.now().astimezone(), ["pigeon"])
    np.testing.assert_allclose(curves, np.full((1, HOURS), 1.0 / HOURS))


def test_the_fitted_model_round_trips_through_json(split_world: SplitWorld) -> None:
    model = _model(split_world)
    assert SendTimeModel.from_json(model.to_json()) == model
