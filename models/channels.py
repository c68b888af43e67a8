"""Channel: how likely each user is to open on each channel, shrunk like the send time.

    country(c) = (opens_country(c) + k_country * global(c)) / (sends_country(c) + k_country)
    user(c)    = (opens_user(c) + k_user * country(c)) / (sends_user(c) + k_user)

over the decayed sends and opens the store serves. The decision combines these with
consent and each channel's cost; here the best channel is the most likely one among the
channels the user consented to. `rates` scores every user of a batch, `rates_for` one
user from their UserState, with the same numbers.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime

import polars as pl

from features.contract.schema import Channel
from features.pipeline import BatchFeatures
from features.state import UserState

CHANNELS = tuple(channel.value for channel in Channel)
UNKNOWN_COUNTRY = "??"  # where fit pools users whose country is unknown


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
            pl.col("country").fill_null(UNKNOWN_COUNTRY))
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
            pl.DataFrame({"channel": sorted(self.global_rates)}, schema={"channel": pl.String}),
            how="cross")
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
                .select("user_id", "channel", open_rate=((
                    pl.col("opens") + self.user_strength * pl.col("prior"))
                    / (pl.col("sends") + self.user_strength)).clip(upper_bound=1.0)))

    def rates_for(self, state: UserState, now: datetime) -> dict[str, float]:
        """Channel -> one user's open rate at `now`, for every channel with a global rate
        (at most 1: opens whose sends were not seen, or decayed away, cannot make more)."""
        sends = state.counts_at("channel_sends", now)
        opens = state.counts_at("channel_opens", now)
        # An unknown country matches no country row in `rates` (a null joins nothing).
        country = state.profile.country
        priors = self.country_rates.get(country, {}) if country is not None else {}
        return {channel: min(1.0, (opens.get(channel, 0.0) + self.user_strength
                                   * priors.get(channel, self.global_rates[channel]))
                             / (sends.get(channel, 0.0) + self.user_strength))
                for channel in sorted(self.global_rates)}

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

    @classmethod
    def from_json(cls, raw: bytes) -> ChannelModel:
        return cls(**json.loads(raw))
