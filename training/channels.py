"""Channel: how likely each user is to open on each channel, shrunk like the send time.

    country(c) = (opens_country(c) + k_country * global(c)) / (sends_country(c) + k_country)
    user(c)    = (opens_user(c) + k_user * country(c)) / (sends_user(c) + k_user)

over the decayed sends and opens the store serves. The decision combines these with
consent and each channel's cost; here the best channel is the most likely one among the
channels the user consented to.

Evaluation replays the logged sends of the evaluation window (their channel was drawn at
random among the reachable ones, so this is unbiased): the open rate of sends that went
out on the model's channel, against sends on the user's most-used channel so far, and
the share of the window's opens that came on each pick.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import polars as pl

from features.contract.schema import Channel
from features.pipeline import BatchFeatures
from training.send_time import sends_and_opens
from training.split import TimeSplit, between

CHANNELS = tuple(channel.value for channel in Channel)


def _sends_opens(batch: BatchFeatures) -> pl.DataFrame:
    """(user_id, channel, sends, opens) from the batch's decayed counts."""
    sends = batch.counts["channel_sends"].select("user_id", channel="key", sends="total")
    opens = batch.counts["channel_opens"].select("user_id", channel="key", opens="total")
    return sends.join(opens, on=["user_id", "channel"], how="full", coalesce=True).fill_null(
        0.0).sort("user_id", "channel")  # a fixed order, so sums over it repeat to the bit


@dataclass(frozen=True)
class ChannelModel:
    global_rates: dict[str, float]
    country_rates: dict[str, dict[str, float]]  # country -> channel -> open rate
    user_strength: float = 5.0

    @classmethod
    def fit(cls, batch: BatchFeatures, country_strength: float = 50.0) -> ChannelModel:
        counts = _sends_opens(batch).join(batch.users.select("user_id", "country"),
                                          on="user_id", how="left").with_columns(
            pl.col("country").fill_null("??"))
        overall = counts.group_by("channel", maintain_order=True).agg(
            pl.col("sends", "opens").sum())
        global_rates = {c: o / s for c, s, o in overall.iter_rows() if s > 0}
        prior = pl.col("channel").replace_strict(global_rates, default=0.0,
                                                 return_dtype=pl.Float64)
        by_country = counts.group_by("country", "channel", maintain_order=True).agg(
            pl.col("sends", "opens").sum()).with_columns(
            rate=(pl.col("opens") + country_strength * prior)
            / (pl.col("sends") + country_strength))
        country_rates: dict[str, dict[str, float]] = {}
        for country, channel, _, _, rate in by_country.sort("country", "channel").iter_rows():
            country_rates.setdefault(country, {})[channel] = rate
        return cls(global_rates, country_rates)

    def rates(self, batch: BatchFeatures) -> pl.DataFrame:
        """(user_id, channel, open_rate) for every user and channel with a global rate."""
        grid = batch.users.select("user_id", "country").join(
            pl.DataFrame({"channel": sorted(self.global_rates)}), how="cross")
        priors = [{"country": country, "channel": channel, "prior": rate}
                  for country, rates in self.country_rates.items()
                  for channel, rate in rates.items()]
        prior_frame = pl.DataFrame(priors, schema={"country": pl.String, "channel": pl.String,
                                                   "prior": pl.Float64})
        fallback = pl.col("channel").replace_strict(self.global_rates, default=0.0,
                                                    return_dtype=pl.Float64)
        return (grid.join(prior_frame, on=["country", "channel"], how="left")
                .join(_sends_opens(batch), on=["user_id", "channel"], how="left")
                .with_columns(pl.col("prior").fill_null(fallback),
                              pl.col("sends", "opens").fill_null(0.0))
                .select("user_id", "channel", open_rate=(
                    pl.col("opens") + self.user_strength * pl.col("prior"))
                    / (pl.col("sends") + self.user_strength)))

    def best_channels(self, batch: BatchFeatures) -> pl.DataFrame:
        """(user_id, channel): the likeliest consented channel of each user who has one."""
        consented = batch.users.unpivot(
            index="user_id", on=[f"consent_{c}" for c in CHANNELS if f"consent_{c}"
                                 in batch.users.columns],
            variable_name="channel", value_name="consent").filter(pl.col("consent")).select(
            "user_id", channel=pl.col("channel").str.strip_prefix("consent_"))
        return (self.rates(batch).join(consented, on=["user_id", "channel"])
                .sort("user_id", "open_rate", "channel", descending=[False, True, False])
                .group_by("user_id", maintain_order=True).agg(pl.col("channel").first()))

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()


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
