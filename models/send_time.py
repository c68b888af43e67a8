"""Send time: at which local hour each user engages on each channel, shrunk hierarchically.

A user's curve over the 24 local hours is their decayed opens by hour (the served
`hourly_opens` feature), smoothed over neighbouring hours, and shrunk toward a prior:

    country(h) = (opens_country(h) + k_country * global(h)) / (opens_country + k_country)
    prior(h)   = w * activity(h - offset) + (1 - w) * country(h),  w = a / (a + k_activity)
    user(h)    = (smooth(opens_user)(h) + k_user * prior(h)) / (opens_user + k_user)

where activity is the user's shopping activity by local hour (the served `hourly_activity`
feature, a in total) and offset the channel's typical lag from a user's busiest shopping
hour to their opens: people read messages around the hours they are active, and there is
far more activity than opens to learn a user's hours from. A user with no history gets
their country's hour, one who shops gets an hour near their activity, and one with many
opens their own.
Curves are over the hour of the *open*; the hour to send is that minus the typical delay
from send to open, measured on the logged sends (training.send_time).

The batch path (`fit`, and the matrices built from BatchFeatures in training) and the
request path (`curves_for`, `send_hours_for`, `send_hours_of`, from UserStates) share
`priors`, `curves` and `send_hours`, so both give the same hours.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import cached_property, lru_cache

import numpy as np
import polars as pl

from features.pipeline import BatchFeatures
from features.state import UserState

HOURS = 24
UNKNOWN_COUNTRY = "??"  # the country curves' key for users whose country is unknown
_FLAT = np.full(HOURS, 1.0 / HOURS)
_FLAT.flags.writeable = False
# _SHIFTED[o]: the columns that move a curve o hours later (its hour h reads hour h - o)
_SHIFTED = (np.arange(HOURS)[None, :] - np.arange(HOURS)[:, None]) % HOURS
_SHIFTED.flags.writeable = False


def hourly_opens(batch: BatchFeatures) -> pl.DataFrame:
    """(user_id, channel, local_hour, opens) from the batch's decayed opens."""
    return batch.counts["hourly_opens"].select(
        "user_id", pl.col("key").str.split_exact(":", 1).struct.rename_fields(
            ["channel", "local_hour"]).struct.unnest(), opens=pl.col("total")).with_columns(
        pl.col("local_hour").cast(pl.Int64))


def hourly_activity(batch: BatchFeatures) -> pl.DataFrame:
    """(user_id, local_hour, activity) from the batch's decayed shopping activity, below 0
    (returns outweighing purchases) read as 0, as a user's state serves it."""
    return batch.counts["hourly_activity"].select(
        "user_id", local_hour=pl.col("key").cast(pl.Int64),
        activity=pl.col("total").clip(lower_bound=0.0))


@lru_cache(maxsize=8)
def smoothing_kernel(bandwidth: float) -> np.ndarray:
    """24 x 24 circular Gaussian smoothing that keeps each row's total (computed once per
    bandwidth: the request path uses it for every decision; read-only)."""
    distance = np.abs(np.arange(HOURS)[:, None] - np.arange(HOURS)[None, :])
    distance = np.minimum(distance, HOURS - distance)
    weights = np.exp(-0.5 * (distance / bandwidth) ** 2)
    kernel = np.asarray(weights / weights.sum(axis=1, keepdims=True))
    kernel.flags.writeable = False
    return kernel


def _shape(opens: np.ndarray) -> np.ndarray:
    total = opens.sum()
    return np.asarray(opens / total) if total > 0 else np.full(HOURS, 1.0 / HOURS)


def busiest_hours(batch: BatchFeatures) -> pl.DataFrame:
    """(user_id, busiest_hour): each user's local hour with most shopping activity."""
    return (hourly_activity(batch).sort("user_id", "activity", "local_hour",
                                        descending=[False, True, False])
            .group_by("user_id", maintain_order=True).agg(busiest_hour=pl.col("local_hour")
                                                          .first()))


def activity_offsets(batch: BatchFeatures) -> dict[str, int]:
    """Per channel, the most common lag (hours, weighted by opens) from a user's busiest
    shopping hour to the hours of their opens."""
    lags = hourly_opens(batch).join(busiest_hours(batch), on="user_id").with_columns(
        lag=(pl.col("local_hour") - pl.col("busiest_hour")) % HOURS).sort(
        "channel", "user_id", "local_hour")
    offsets = {}
    for (channel,), rows in lags.group_by("channel", maintain_order=True):
        weights = np.zeros(HOURS)
        np.add.at(weights, rows["lag"].to_numpy(), rows["opens"].to_numpy())
        offsets[str(channel)] = int(np.argmax(weights @ smoothing_kernel(1.0)))
    return offsets


def by_hour(rows: int, cells: Iterable[tuple[int, int, float]]) -> np.ndarray:
    """A rows x 24 matrix from (row, hour, value) cells (one user's few dozen)."""
    matrix = np.zeros((rows, HOURS))
    for row, hour, value in cells:
        matrix[row, hour] += value
    return matrix


def activity_by_hour(state: UserState, now: datetime) -> np.ndarray:
    """(1, 24): one user's served shopping activity by local hour at `now`."""
    return by_hour(1, ((0, int(hour), value)
                       for hour, value in state.counts_at("hourly_activity", now).items()))


def per_user(keys: Sequence[Sequence[str]], hours: np.ndarray) -> list[dict[str, int]]:
    """Hours computed as one array for many users, as each user's key -> hour: `keys`
    lists each user's keys in the order of their rows."""
    found, start, every = [], 0, hours.tolist()
    for mine in keys:
        found.append(dict(zip(mine, every[start:start + len(mine)], strict=True)))
        start += len(mine)
    return found


@dataclass(frozen=True)
class SendTimeModel:
    global_curves: dict[str, list[float]]  # channel -> 24 shares of opens
    country_curves: dict[str, dict[str, list[float]]]  # channel -> country -> 24 shares
    offsets: dict[str, int]  # channel -> lag from busiest shopping hour to opens
    delay_hours: int
    user_strength: float = 6.0  # a user's curve weighs the prior as this many opens
    activity_strength: float = 1.0  # the prior trusts activity over country from this much
    bandwidth: float = 1.0  # hours of smoothing of a user's opens
    activity_bandwidth: float = 1.5  # hours of smoothing of a user's activity

    @classmethod
    def fit(cls, batch: BatchFeatures, delay_hours: int,
            country_strength: float = 20.0) -> SendTimeModel:
        opens = hourly_opens(batch).join(batch.users.select("user_id", "country"),
                                         on="user_id", how="left").with_columns(
            pl.col("country").fill_null(UNKNOWN_COUNTRY)).sort(
            "channel", "country", "user_id", "local_hour")  # a fixed order of sums
        global_curves: dict[str, list[float]] = {}
        country_curves: dict[str, dict[str, list[float]]] = {}
        for (channel,), rows in opens.group_by("channel", maintain_order=True):
            total = np.zeros(HOURS)
            np.add.at(total, rows["local_hour"].to_numpy(), rows["opens"].to_numpy())
            overall = _shape(total)
            global_curves[str(channel)] = overall.tolist()
            per_country = {}
            for (country,), part in rows.group_by("country", maintain_order=True):
                counts = np.zeros(HOURS)
                np.add.at(counts, part["local_hour"].to_numpy(), part["opens"].to_numpy())
                shrunk = (counts + country_strength * overall) / (counts.sum() + country_strength)
                per_country[str(country)] = shrunk.tolist()
            country_curves[str(channel)] = per_country
        return cls(global_curves, country_curves, activity_offsets(batch), delay_hours)

    def country_prior(self, channel: str, country: str | None) -> np.ndarray:
        """(24,) the channel's curve in the user's country, else its global one (read-only)."""
        curves = self._prior_arrays
        found = curves.get((channel, country or UNKNOWN_COUNTRY))
        return found if found is not None else curves.get((channel, None), _FLAT)

    @cached_property
    def _prior_arrays(self) -> dict[tuple[str, str | None], np.ndarray]:
        """(channel, country or None for global) -> curve, built once per model."""
        curves: dict[tuple[str, str | None], list[float]] = {
            (channel, None): curve for channel, curve in self.global_curves.items()}
        for channel, countries in self.country_curves.items():
            curves.update(((channel, country), curve) for country, curve in countries.items())
        arrays = {key: np.asarray(curve, dtype=np.float64) for key, curve in curves.items()}
        for array in arrays.values():
            array.flags.writeable = False
        return arrays

    def priors(self, channels: Sequence[str], countries: np.ndarray,
               activity: np.ndarray) -> np.ndarray:
        """Priors (n x 24) from each row's country curve and shopping activity (n x 24)."""
        total = activity.sum(axis=1, keepdims=True)
        shifts = [self.offsets.get(channel, 0) % HOURS for channel in channels]
        shaped = (activity @ smoothing_kernel(self.activity_bandwidth)) / np.maximum(total, 1e-12)
        shifted = shaped[np.arange(len(channels))[:, None], _SHIFTED[shifts]]
        weight = total / (total + self.activity_strength)
        return np.asarray(weight * shifted + (1 - weight) * countries)

    def curves(self, opens: np.ndarray, priors: np.ndarray) -> np.ndarray:
        """Users' open curves (n x 24) from their opens by hour and their priors (n x 24)."""
        smoothed = opens @ smoothing_kernel(self.bandwidth)
        total = opens.sum(axis=1, keepdims=True)
        return np.asarray((smoothed + self.user_strength * priors)
                          / (total + self.user_strength))

    def engagement_hours(self, opens: np.ndarray, priors: np.ndarray) -> np.ndarray:
        return np.asarray(self.curves(opens, priors).argmax(axis=1))

    def send_hours(self, opens: np.ndarray, priors: np.ndarray) -> np.ndarray:
        """The local hour to send so that the open falls in the best hour."""
        return np.asarray((self.engagement_hours(opens, priors) - self.delay_hours) % HOURS)

    def _user_rows(self, state: UserState, now: datetime, channels: Sequence[str]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One user's opens, shopping activity and country curves, a row per channel, as the
        batch path builds them."""
        row = {channel: index for index, channel in enumerate(channels)}
        cells = []
        for key, value in state.counts_at("hourly_opens", now).items():  # "channel:hour"
            channel, _, hour = key.partition(":")
            if channel in row:
                cells.append((row[channel], int(hour), value))
        opens = by_hour(len(channels), cells)
        activity = activity_by_hour(state, now)
        countries = (np.stack([self.country_prior(channel, state.profile.country)
                               for channel in channels])
                     if channels else np.zeros((0, HOURS)))
        return opens, np.repeat(activity, len(channels), axis=0), countries

    def curves_for(self, state: UserState, now: datetime,
                   channels: Sequence[str]) -> np.ndarray:
        """One user's open curves (len(channels) x 24) at `now`: a score per local hour."""
        opens, activity, countries = self._user_rows(state, now, channels)
        return self.curves(opens, self.priors(channels, countries, activity))

    def send_hours_for(self, state: UserState, now: datetime,
                       channels: Sequence[str]) -> dict[str, int]:
        """Channel -> the local hour (0..23) to send to one user at `now`."""
        return self.send_hours_of([(state, channels)], now)[0]

    def send_hours_of(self, asked: Sequence[tuple[UserState, Sequence[str]]],
                      now: datetime) -> list[dict[str, int]]:
        """`send_hours_for` of each (user, channels), every user's priors and curves
        computed as one matrix: a call's users at the cost of a few."""
        if not asked:
            return []
        rows = [self._user_rows(state, now, channels) for state, channels in asked]
        every = [channel for _, channels in asked for channel in channels]
        opens, activity, countries = (rows[0] if len(rows) == 1 else
                                      (np.concatenate(part) for part in zip(*rows, strict=True)))
        hours = self.send_hours(opens, self.priors(every, countries, activity))
        return per_user([channels for _, channels in asked], hours)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> SendTimeModel:
        return cls(**json.loads(raw))
