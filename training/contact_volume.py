"""Contact volume: how engagement falls with the messages a user got in the last 7 days.

For every logged send, the number of sends to the same user in the 7 days before it, and
whether it was opened. The open rate by that count (overall and per channel) shows the
fatigue; the recommended weekly cap is the largest n whose n-th message of the week is
still opened at least `keep` times as often as a first one, counted where there are
enough sends to tell.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import polars as pl

from training.send_time import sends_and_opens

MAX_COUNTED = 10  # 10 or more recent sends are one bucket
MIN_SENDS = 200  # a bucket with fewer sends does not decide the cap


def recent_sends(events: pl.DataFrame) -> pl.DataFrame:
    """Every send with `recent` (sends to the user in the 7 days before) and `opened`."""
    sends = sends_and_opens(events).sort("user_id", "sent")
    counted = sends.rolling(index_column="sent", period="7d", group_by="user_id",
                            closed="none").agg(recent=pl.len())
    return sends.with_columns(recent=counted["recent"].clip(upper_bound=MAX_COUNTED),
                              opened=pl.col("opened").is_not_null())


@dataclass(frozen=True)
class ContactVolume:
    open_rates: dict[str, dict[int, float]]  # "all" or channel -> recent sends -> open rate
    weekly_cap: int | None  # None: too few sends to tell

    @classmethod
    def fit(cls, events: pl.DataFrame, keep: float = 0.5) -> ContactVolume:
        sends = recent_sends(events)
        rates: dict[str, dict[int, float]] = {}
        for name, part in [("all", sends), *((str(c), p) for (c,), p in
                                              sends.group_by("channel"))]:
            table = part.group_by("recent").agg(rate=pl.col("opened").mean(), n=pl.len())
            rates[name] = {r: rate for r, rate, n in table.sort("recent").iter_rows()
                           if n >= MIN_SENDS}
        overall = rates["all"]
        first = overall.get(0)
        if not first:  # too few first messages of a week to tell: no cap learned
            return cls(rates, None)
        cap = 1
        while cap in overall and overall[cap] >= keep * first:  # measured, and still opened
            cap += 1  # so the (cap + 1)-th message of the week may go
        return cls(rates, cap)

    def summary(self) -> dict[str, object]:
        return {"weekly_cap": self.weekly_cap,
                "open_rate_by_recent_sends": {str(k): v for k, v in
                                              self.open_rates["all"].items()}}

    def to_json(self) -> bytes:
        return json.dumps({"weekly_cap": self.weekly_cap, "open_rates": {
            name: {str(k): v for k, v in rates.items()}
            for name, rates in self.open_rates.items()}}, sort_keys=True).encode()
