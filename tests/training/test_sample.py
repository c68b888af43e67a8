from datetime import UTC, datetime

import polars as pl

from training.sample import sample_users


def _data(n_users: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    ids = [f"u{i:03d}" for i in range(n_users)]
    events = pl.DataFrame({"user_id": [u for u in ids for _ in range(3)],
                           "ts": [datetime(2026, 1, 1 + k, tzinfo=UTC)
                                  for _ in ids for k in range(3)]})
    users = pl.DataFrame({"user_id": [*ids, "no-events"], "country": "DE"})
    return events, users


def test_a_seeded_draw_of_whole_users_with_all_their_events() -> None:
    events, users = _data(50)
    sample = sample_users(events, users, 20, seed=4)
    drawn = set(sample.events["user_id"])
    assert (sample.drawn, sample.of) == (20, 50) and len(drawn) == 20
    assert sample.events.height == 60  # every event of a drawn user
    assert set(sample.users["user_id"]) == drawn
    again = sample_users(events.reverse(), users, 20, seed=4)
    assert set(again.events["user_id"]) == drawn  # the draw does not depend on row order
    assert set(sample_users(events, users, 20, seed=5).events["user_id"]) != drawn


def test_no_sample_at_or_under_the_limit_or_without_one() -> None:
    events, users = _data(10)
    for limit in (10, 11, 0):
        sample = sample_users(events, users, limit, seed=1)
        assert sample.events is events and sample.users is users
        assert (sample.drawn, sample.of) == (10, 10)
