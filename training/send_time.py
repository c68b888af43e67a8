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
from send to open, measured on the logged sends.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import timedelta

import numpy as np
import polars as pl

from features.contract.schema import EventType
from features.pipeline import BatchFeatures

HOURS = 24
OPEN_WITHIN = timedelta(days=2)


def hourly_opens(batch: BatchFeatures) -> pl.DataFrame:
    """(user_id, channel, local_hour, opens) from the batch's decayed opens."""
    return batch.counts["hourly_opens"].select(
        "user_id", pl.col("key").str.split_exact(":", 1).struct.rename_fields(
            ["channel", "local_hour"]).struct.unnest(), opens=pl.col("total")).with_columns(
        pl.col("local_hour").cast(pl.Int64))


def _kernel(bandwidth: float) -> np.ndarray:
    """24 x 24 circular Gaussian smoothing that keeps each row's total."""
    distance = np.abs(np.arange(HOURS)[:, None] - np.arange(HOURS)[None, :])
    distance = np.minimum(distance, HOURS - distance)
    weights = np.exp(-0.5 * (distance / bandwidth) ** 2)
    return np.asarray(weights / weights.sum(axis=1, keepdims=True))


def _shape(opens: np.ndarray) -> np.ndarray:
    total = opens.sum()
    return np.asarray(opens / total) if total > 0 else np.full(HOURS, 1.0 / HOURS)


def sends_and_opens(events: pl.DataFrame) -> pl.DataFrame:
    """Every send (user_id, campaign_id, channel, sent) with its first open within
    OPEN_WITHIN (`opened`, null if none): same user, campaign and channel."""
    keys = ["user_id", "campaign_id", "channel"]
    kind = pl.col("event_type")
    sends = events.filter(kind == EventType.MESSAGE_SENT.value).select(*keys, sent="ts")
    opens = events.filter(kind == EventType.MESSAGE_OPEN.value).select(*keys, opened="ts")
    pairs = (sends.with_row_index("__send").join(opens, on=keys)
             .filter((pl.col("opened") >= pl.col("sent"))
                     & (pl.col("opened") <= pl.col("sent") + OPEN_WITHIN))
             .group_by("__send").agg(pl.col("opened").min()))
    return (sends.with_row_index("__send").join(pairs, on="__send", how="left")
            .sort("__send").drop("__send"))


def open_delay_hours(sends: pl.DataFrame) -> int:
    """The median whole hours from a send to its open, from `sends_and_opens`."""
    delay = (sends["opened"] - sends["sent"]).dt.total_seconds().drop_nulls()
    return int(round(float(delay.median()) / 3600)) if delay.len() else 0  # type: ignore[arg-type]


def hourly_activity(batch: BatchFeatures) -> pl.DataFrame:
    """(user_id, local_hour, activity) from the batch's decayed shopping activity."""
    return batch.counts["hourly_activity"].select(
        "user_id", local_hour=pl.col("key").cast(pl.Int64), activity=pl.col("total"))


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
        offsets[str(channel)] = int(np.argmax(weights @ _kernel(1.0)))
    return offsets


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
            pl.col("country").fill_null("??")).sort("channel", "country", "user_id",
                                                    "local_hour")  # a fixed order of sums
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
        countries = self.country_curves.get(channel, {})
        curve = countries.get(country or "??") or self.global_curves.get(channel)
        return np.asarray(curve) if curve is not None else np.full(HOURS, 1.0 / HOURS)

    def priors(self, channels: list[str], countries: np.ndarray,
               activity: np.ndarray) -> np.ndarray:
        """Priors (n x 24) from each row's country curve and shopping activity (n x 24)."""
        total = activity.sum(axis=1, keepdims=True)
        shifts = np.array([self.offsets.get(channel, 0) for channel in channels])
        shaped = (activity @ _kernel(self.activity_bandwidth)) / np.maximum(total, 1e-12)
        rows = np.arange(len(channels))[:, None]
        columns = (np.arange(HOURS)[None, :] - shifts[:, None]) % HOURS
        shifted = shaped[rows, columns]  # shifted[h] = shaped[h - offset]
        weight = total / (total + self.activity_strength)
        return np.asarray(weight * shifted + (1 - weight) * countries)

    def curves(self, opens: np.ndarray, priors: np.ndarray) -> np.ndarray:
        """Users' open curves (n x 24) from their opens by hour and their priors (n x 24)."""
        smoothed = opens @ _kernel(self.bandwidth)
        total = opens.sum(axis=1, keepdims=True)
        return np.asarray((smoothed + self.user_strength * priors)
                          / (total + self.user_strength))

    def engagement_hours(self, opens: np.ndarray, priors: np.ndarray) -> np.ndarray:
        return np.asarray(self.curves(opens, priors).argmax(axis=1))

    def send_hours(self, opens: np.ndarray, priors: np.ndarray) -> np.ndarray:
        """The local hour to send so that the open falls in the best hour."""
        return np.asarray((self.engagement_hours(opens, priors) - self.delay_hours) % HOURS)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> SendTimeModel:
        return cls(**json.loads(raw))


def within_an_hour(a: np.ndarray | pl.Series, b: np.ndarray | pl.Series) -> np.ndarray:
    distance = np.abs(np.asarray(a) - np.asarray(b)) % HOURS
    return np.asarray(np.minimum(distance, HOURS - distance) <= 1)
