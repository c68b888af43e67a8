"""Channel evaluation: the channel model (models.channels) against the user's habit.

Evaluation replays the logged sends of the evaluation window (their channel was drawn at
random among the reachable ones, so this is unbiased): the open rate of sends that went
out on the model's channel, against sends on the user's most-used channel so far, and
the share of the window's opens that came on each pick.
"""

from __future__ import annotations

import polars as pl

from features.pipeline import BatchFeatures
from models.channels import ChannelModel
from training.send_time import sends_and_opens
from training.split import TimeSplit, between


def evaluate_channels(events: pl.DataFrame, batch: BatchFeatures,
                      split: TimeSplit) -> tuple[ChannelModel, dict[str, float]]:
    """`batch`: the features at `split.eval_cut`."""
    model = ChannelModel.fit(batch)
    picked = model.best_channels(batch).rename({"channel": "model_channel"})
    most_used = (batch.counts["channel_sends"].sort("user_id", "total", "key",
                                                    descending=[False, True, False])
                 .group_by("user_id", maintain_order=True)
                 .agg(used_channel=pl.col("key").first()))
    sends = sends_and_opens(between(events, split.eval_cut, split.end)).join(
        picked, on="user_id").join(most_used, on="user_id", how="left").with_columns(
        opened=pl.col("opened").is_not_null())
    opened = sends.filter(pl.col("opened"))
    on_model = sends.filter(pl.col("channel") == pl.col("model_channel"))
    on_used = sends.filter(pl.col("channel") == pl.col("used_channel"))
    metrics = {
        "open_rate_on_model_channel": _mean(on_model["opened"]),
        "open_rate_on_most_used_channel": _mean(on_used["opened"]),
        "open_rate_all_sends": _mean(sends["opened"]),
        "share_of_opens_on_model_channel": _mean(opened["channel"] == opened["model_channel"]),
        "share_of_opens_on_most_used_channel": _mean(
            opened["channel"] == opened["used_channel"]),
        "sends": float(sends.height),
    }
    return model, metrics


def _mean(flags: pl.Series) -> float:
    values = flags.drop_nulls().cast(pl.Float64).to_numpy()
    return float(values.mean()) if values.size else float("nan")
