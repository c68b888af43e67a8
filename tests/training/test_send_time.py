import numpy as np

from models.send_time import HOURS, SendTimeModel
from training.send_time import within_an_hour


def _model() -> SendTimeModel:
    evening = np.full(HOURS, 0.5 / 23)
    evening[20] = 0.5
    return SendTimeModel(global_curves={"email": evening.tolist()},
                         country_curves={"email": {"JP": np.roll(evening, -12).tolist()}},
                         offsets={"email": 1}, delay_hours=1)


def _hours(model: SendTimeModel, opens: np.ndarray, country: str | None,
           activity: np.ndarray) -> tuple[int, int]:
    priors = model.priors(["email"], model.country_prior("email", country)[None, :],
                          activity[None, :])
    return (int(model.engagement_hours(opens[None, :], priors)[0]),
            int(model.send_hours(opens[None, :], priors)[0]))


def test_no_history_gets_the_countrys_hour_or_the_channels() -> None:
    model, nothing = _model(), np.zeros(HOURS)
    assert _hours(model, nothing, "JP", nothing) == (8, 7)  # open at 8, send an hour before
    assert _hours(model, nothing, "FR", nothing) == (20, 19)  # unknown country: global


def test_shopping_activity_moves_the_hour_near_the_users_own() -> None:
    activity = np.zeros(HOURS)
    activity[6] = 40.0  # shops at 6; opens come an hour after activity on this channel
    assert _hours(_model(), np.zeros(HOURS), "JP", activity)[0] == 7


def test_many_opens_outweigh_every_prior() -> None:
    opens = np.zeros(HOURS)
    opens[14] = 30.0
    activity = np.zeros(HOURS)
    activity[6] = 40.0
    assert _hours(_model(), opens, "JP", activity) == (14, 13)


def test_hours_within_one_wrap_around_midnight() -> None:
    assert within_an_hour(np.array([23, 0, 5]), np.array([0, 22, 7])).tolist() == [
        True, False, False]


def test_the_model_round_trips_through_json() -> None:
    model = _model()
    assert SendTimeModel.from_json(model.to_json()) == model
