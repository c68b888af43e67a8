"""How well the send-time model picks hours, against the single best hour per channel.

On the evaluation window: the hit rate (the predicted engagement hour within 1 hour of
each actual open's local hour), and, replaying the logged sends (their hours were chosen
at random, so this is unbiased), the open rate of sends that went out within 1 hour of
the model's send hour over that of sends within 1 hour of the global best send hour. With
ground truth, the share of (user, channel) whose true best hour the model's send hour
hits within 1 hour.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from features.contract.schema import EventType
from features.local_time import HOUR_COLUMN, with_hour_of_week
from features.pipeline import BatchFeatures
from features.store.layout import ACTIVE_HOURS, HOURLY
from models.send_time import HOURS, SendTimeModel, hourly_activity, hourly_opens
from training.send_time import mean_or_nan, open_delay_hours, sends_and_opens, within_an_hour
from training.split import TimeSplit, between, up_to


def _top(frame: pl.DataFrame, value: str, limit: int, *within: str) -> pl.DataFrame:
    keys = ["user_id", *within]
    return (frame.sort([*keys, value], descending=[False] * len(keys) + [True])
            .filter(pl.int_range(pl.len()).over(keys) < limit))


def as_served(batch: BatchFeatures) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Opens and activity by hour cut as the store keeps them: the HOURLY channels with
    most opens, the ACTIVE_HOURS busiest hours."""
    opens = hourly_opens(batch)
    channels = _top(opens.group_by("user_id", "channel").agg(total=pl.col("opens").sum()),
                    "total", HOURLY)
    return (opens.join(channels.select("user_id", "channel"), on=["user_id", "channel"]),
            _top(hourly_activity(batch), "activity", ACTIVE_HOURS))


def _matrix(pairs: pl.DataFrame, cells: pl.DataFrame, value: str) -> np.ndarray:
    matrix = np.zeros((pairs.height, HOURS))
    np.add.at(matrix, (cells["__pair"].to_numpy(), cells["local_hour"].to_numpy()),
              cells[value].to_numpy())
    return matrix


def predicted_hours(model: SendTimeModel, batch: BatchFeatures,
                    pairs: pl.DataFrame) -> pl.DataFrame:
    """`pairs` (user_id, channel) plus `engagement_hour` and `send_hour`."""
    opens, activity = as_served(batch)
    pairs = pairs.unique().sort("user_id", "channel").with_row_index("__pair")
    opened = _matrix(pairs, pairs.join(opens, on=["user_id", "channel"]), "opens")
    active = _matrix(pairs, pairs.join(activity, on="user_id"), "activity")
    rows = pairs.join(batch.users.select("user_id", "country"), on="user_id",
                      how="left").sort("__pair")
    countries = np.stack([model.country_prior(channel, country) for channel, country in
                          rows.select("channel", "country").iter_rows()]
                         ) if pairs.height else np.zeros((0, HOURS))
    priors = model.priors(rows["channel"].to_list(), countries, active)
    return pairs.drop("__pair").with_columns(
        engagement_hour=pl.Series(model.engagement_hours(opened, priors)),
        send_hour=pl.Series(model.send_hours(opened, priors)))


def evaluate_send_time(events: pl.DataFrame, users: pl.DataFrame, batch: BatchFeatures,
                       split: TimeSplit, truth_dir: Path | None = None,
                       ) -> tuple[SendTimeModel, dict[str, float]]:
    """`batch`: the features at `split.eval_cut`."""
    zones = users.select("user_id", "timezone")
    model = SendTimeModel.fit(batch, open_delay_hours(sends_and_opens(
        up_to(events, split.eval_cut))))
    later = between(events, split.eval_cut, split.end)
    opens = with_hour_of_week(
        later.filter(pl.col("event_type") == EventType.MESSAGE_OPEN.value), zones)
    sends = with_hour_of_week(sends_and_opens(later).rename({"sent": "ts"}), zones)
    pairs = pl.concat([opens.select("user_id", "channel"), sends.select("user_id", "channel")])
    hours = predicted_hours(model, batch, pairs)
    best = {channel: int(np.argmax(curve)) for channel, curve in model.global_curves.items()}
    global_hour = pl.col("channel").replace_strict(best, default=0, return_dtype=pl.Int64)
    scored = opens.join(hours, on=["user_id", "channel"]).with_columns(
        global_hour=global_hour)
    metrics = {
        "hit_rate_1h": mean_or_nan(within_an_hour(scored["engagement_hour"], scored[HOUR_COLUMN])),
        "global_hit_rate_1h": mean_or_nan(within_an_hour(scored["global_hour"],
                                                         scored[HOUR_COLUMN])),
        "opens": float(scored.height),
        "delay_hours": float(model.delay_hours),
    }
    replay = sends.join(hours, on=["user_id", "channel"]).with_columns(
        global_send=(global_hour - model.delay_hours) % HOURS,
        opened=pl.col("opened").is_not_null())
    hit = within_an_hour(replay["send_hour"], replay[HOUR_COLUMN])
    at_global = within_an_hour(replay["global_send"], replay[HOUR_COLUMN])
    opened = replay["opened"].to_numpy()
    metrics["open_rate_at_model_hour"] = mean_or_nan(opened[hit])
    metrics["open_rate_at_global_hour"] = mean_or_nan(opened[at_global])
    at_global_rate = metrics["open_rate_at_global_hour"]
    metrics["open_rate_lift"] = (metrics["open_rate_at_model_hour"] / at_global_rate
                                 if at_global_rate > 0 else float("nan"))
    if truth_dir is not None and (truth_dir / "channels").is_dir():
        truth = pl.read_parquet(truth_dir / "channels").select(
            "user_id", "channel", "best_hour_local")
        checked = hours.join(truth, on=["user_id", "channel"]).with_columns(
            global_send=(global_hour - model.delay_hours) % HOURS)
        metrics["oracle_best_hour_hit_rate_1h"] = mean_or_nan(within_an_hour(
            checked["send_hour"], checked["best_hour_local"]))
        metrics["oracle_global_hour_hit_rate_1h"] = mean_or_nan(within_an_hour(
            checked["global_send"], checked["best_hour_local"]))
    return model, metrics
