"""Smoothed engagement rates per channel: opens, clicks and conversions per send.

A user with 2 sends and 1 open has not shown a 50% open rate. Each rate is shrunk toward
the population's rate on that channel, weighing it as `prior_sends` sends:

    rate = min(1, (events + prior_sends * population_rate) / (sends + prior_sends))

over the decayed counts (so recent behaviour weighs more; opens whose sends nbo never saw,
or saw decay away, cannot make a rate above 1). The population rates come from
the batch pass and are published with the features.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

RESPONSES = {"open": "channel_opens", "click": "channel_clicks",
             "conversion": "channel_conversions"}
SENDS = "channel_sends"


@dataclass(frozen=True)
class EngagementRates:
    prior_sends: float = 5.0

    @staticmethod
    def population(counts: Mapping[str, pl.DataFrame]) -> dict[str, dict[str, float]]:
        """response -> channel -> the population's rate, from the batch's decayed counts."""
        sends = counts[SENDS].group_by("key").agg(sends=pl.col("total").sum())
        rates: dict[str, dict[str, float]] = {}
        for response, name in RESPONSES.items():
            joined = sends.join(counts[name].group_by("key").agg(n=pl.col("total").sum()),
                                on="key", how="left").sort("key")
            rates[response] = {channel: min(1.0, max(n or 0.0, 0.0) / total)
                               for channel, total, n in joined.iter_rows() if total > 0}
        return rates

    def rates(self, values: Mapping[str, Mapping[str, float]],
              population: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
        """channel -> response -> smoothed rate, from one user's decayed counts at a moment
        (name -> key -> value) for every channel with a population rate."""
        channels = sorted({c for rates in population.values() for c in rates})
        return {channel: self.rates_on(values, population, channel) for channel in channels}

    def rates_on(self, values: Mapping[str, Mapping[str, float]],
                 population: Mapping[str, Mapping[str, float]],
                 channel: str) -> dict[str, float]:
        """`rates` of one channel (response -> rate): for a channel without a population
        rate, {} as `rates` has no entry for it."""
        if not any(channel in rates for rates in population.values()):
            return {}
        sends = values.get(SENDS, {}).get(channel, 0.0)
        return {response: min(1.0, (values.get(name, {}).get(channel, 0.0)
                                    + self.prior_sends * population[response].get(channel, 0.0))
                               / (sends + self.prior_sends))
                for response, name in RESPONSES.items()}


    def batch(self, counts: Mapping[str, pl.DataFrame],
              population: Mapping[str, Mapping[str, float]]) -> pl.DataFrame:
        """The same rates for every user with sends or responses on a channel the
        population has rates for: (user_id, channel, open, click, conversion), from a
        batch's anchored totals (values at the anchor). Opens of sends nbo never saw count
        over no sends, as `rates_on` counts them."""
        channels = sorted({channel for rates in population.values() for channel in rates})
        seen = pl.concat([counts[name].select("user_id", channel="key")
                          for name in (SENDS, *RESPONSES.values())]).unique().filter(
            pl.col("channel").is_in(channels))
        sends = counts[SENDS].select("user_id", channel="key", sends=pl.col("total"))
        rates = seen.join(sends, on=["user_id", "channel"], how="left").with_columns(
            pl.col("sends").fill_null(0.0)).sort("user_id", "channel")
        for response, name in RESPONSES.items():
            prior = pl.col("channel").replace_strict(
                dict(population[response]), default=0.0, return_dtype=pl.Float64)
            observed = counts[name].select("user_id", channel="key", n=pl.col("total"))
            rates = rates.join(observed, on=["user_id", "channel"], how="left").with_columns(
                # a total below 0 (returns outweighing attributed orders) reads as 0, as
                # the decayed counts read at serving time (features/counts.py)
                ((pl.col("n").fill_null(0.0).clip(lower_bound=0.0) + self.prior_sends * prior)
                 / (pl.col("sends") + self.prior_sends)).clip(upper_bound=1.0)
                .alias(response)).drop("n")
        return rates.drop("sends")


DEFAULT_ENGAGEMENT = EngagementRates()
