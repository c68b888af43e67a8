import numpy as np
import polars as pl

from features.local_time import HOUR_COLUMN
from features.pipeline import BatchFeatures
from features.state import UserState
from models.category_timing import CategoryTiming, activity_rows
from models.send_time import HOURS, hourly_activity

BUYERS = 2400


def _known_world(seed: int = 4) -> tuple[pl.DataFrame, np.ndarray]:
    """Buyers busiest at every hour alike. Coffee: 70% of lines at 6-8 h, the rest at the
    buyer's busiest hour; books: always at the buyer's busiest hour."""
    rng = np.random.default_rng(seed)
    peaks = rng.integers(0, HOURS, BUYERS)
    activity = np.zeros((BUYERS, HOURS))
    activity[np.arange(BUYERS), peaks] = 10.0
    morning = rng.random(BUYERS) < 0.7
    coffee_hours = np.where(morning, 7 + rng.integers(-1, 2, BUYERS), peaks)
    purchases = pl.DataFrame({
        "user_id": [f"u{i}" for i in range(BUYERS)] * 2,
        "category": ["coffee"] * BUYERS + ["books"] * BUYERS,
        HOUR_COLUMN: np.concatenate([coffee_hours, peaks])})
    return purchases, np.vstack([activity, activity])


def test_a_category_bought_at_its_own_hours_is_found() -> None:
    purchases, activity = _known_world()
    model = CategoryTiming.fit(purchases, activity)
    assert model.category_hour("coffee") == 7
    assert 0.55 < model.shares["coffee"] < 0.85
    assert model.shares["books"] < 0.1  # explained by its buyers' own hours


def test_a_users_hour_for_a_category_mixes_theirs_and_the_categorys() -> None:
    purchases, activity = _known_world()
    model = CategoryTiming.fit(purchases, activity)
    evening = np.zeros((1, HOURS))
    evening[0, 20] = 10.0
    hours = model.hours(np.repeat(evening, 3, axis=0), ["coffee", "books", "never-seen"])
    assert hours.tolist() == [7, 20, 20]


def test_served_hours_equal_the_batch_ones(full_batch: BatchFeatures) -> None:
    users = hourly_activity(full_batch)["user_id"].unique().sort().head(40)
    categories = ["coffee", "snacks", "books"]
    purchases = pl.DataFrame({
        "user_id": users.to_list() * 3,
        "category": [c for c in categories for _ in range(users.len())],
        HOUR_COLUMN: np.tile(np.arange(users.len()) % HOURS, 3)})
    model = CategoryTiming.fit(purchases, activity_rows(full_batch, purchases["user_id"]))
    rows = activity_rows(full_batch, users)
    now = full_batch.anchor
    for row, user_id in enumerate(users.to_list()):
        state = full_batch.state(user_id)
        assert state is not None
        batch_hours = model.hours(np.repeat(rows[row:row + 1], 3, axis=0), categories)
        assert model.hours_for(state, now, categories) == dict(
            zip(categories, batch_hours.tolist(), strict=True))
    nobody = model.hours_for(UserState("nobody", now), now, categories)
    assert set(nobody) == set(categories) and all(0 <= h < HOURS for h in nobody.values())
    states = [full_batch.state(user_id) or UserState(user_id, now) for user_id in users]
    asked = [(state, categories[:i % 4]) for i, state in enumerate(states)]  # some with none
    assert model.hours_of(asked, now) == [  # many users in one computation, each their own
        model.hours_for(state, now, some) for state, some in asked]
    assert model.hours_of([], now) == []


def test_the_fitted_model_round_trips_through_json() -> None:
    model = CategoryTiming.fit(*_known_world())
    assert CategoryTiming.from_json(model.to_json()) == model
