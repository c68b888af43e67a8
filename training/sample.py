"""Training on a sample of the users when there are many (docs/training.md, "Scale").

Every model learns patterns shared across users (how signals rank categories, how offers
move conversion, which hours get opens); a few hundred thousand users pin those down as
well as millions do, in a fraction of the time and memory. The sample is a seeded draw
of whole users (every event of a drawn user, none of the others), so the same data and
seed train on the same users. Serving is not sampled: `nbo publish` computes every user's
features, and the models score them all.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

MAX_TRAINING_USERS = 200_000


@dataclass(frozen=True)
class UserSample:
    events: pl.DataFrame
    users: pl.DataFrame  # the users table's rows of the drawn users
    drawn: int  # users in the sample
    of: int  # users with events in the data


def sample_users(events: pl.DataFrame, users: pl.DataFrame, max_users: int,
                 seed: int) -> UserSample:
    """At most `max_users` of the users with events (all of them when `max_users` is 0 or
    there are no more), drawn with `seed`, with their events and users rows."""
    ids = events["user_id"].unique().sort()
    if max_users <= 0 or len(ids) <= max_users:
        return UserSample(events, users, len(ids), len(ids))
    drawn = ids.sample(n=max_users, seed=seed).implode()
    return UserSample(events.filter(pl.col("user_id").is_in(drawn)),
                      users.filter(pl.col("user_id").is_in(drawn)), max_users, len(ids))
