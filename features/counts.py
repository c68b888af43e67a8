"""Time-decayed, weighted event counts per user and per value of an event column.

Affinities (category, brand, price band), channel engagement (sends, opens, clicks,
attributed conversions per channel), opens per channel and local hour of the day, and
shopping activity per local hour are all such counts. Each definition is used twice:
`batch` folds a whole log into anchored totals, `live` gives the one addition an event
makes to them. A return (negative quantity) subtracts a purchase's weight at the return's
own time, so it can take back a little more than the older purchase still counts for;
`value` floors the result at zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

import polars as pl

from features.contract.schema import EventType
from features.decay import HalfLife
from features.event import RETURNED, Event

INTEREST_WEIGHTS: Mapping[EventType, float] = MappingProxyType({
    EventType.VIEW: 1.0,
    EventType.SEARCH: 0.5,
    EventType.WISHLIST: 2.0,
    EventType.ADD_TO_CART: 3.0,
    EventType.CHECKOUT: 4.0,
    EventType.PURCHASE: 6.0,
})


MIN_TOTAL = 1e-6
"""The smallest anchored total that counts (a millionth of one event at the cut-off, what
is left of one some 20 half-lives old): the store's float16 totals lose smaller ones, so
without the floor an interest decayed to nothing read as a price band in batch and none
once published."""


@dataclass(frozen=True)
class DecayedCount:
    """A decayed, weighted count of a user's events per value of `columns`.

    With several columns the key joins their values with ':' (say `email:44`, channel
    and local hour of week). With `requires`, only events where that column is set
    count (say, purchases that carry a campaign_id: attributed conversions).
    """

    name: str
    columns: tuple[str, ...]
    half_life: HalfLife
    weights: Mapping[EventType, float] = field(default_factory=lambda: INTEREST_WEIGHTS)
    requires: str | None = None

    def batch(self, events: pl.DataFrame | pl.LazyFrame, anchor: datetime) -> pl.DataFrame:
        """Anchored totals per (user_id, key) over a log of typed events; those decayed
        under MIN_TOTAL left out, so training reads what serving does (`values`)."""
        kinds = [kind.value for kind in self.weights]
        weight = pl.col("event_type").replace_strict(
            kinds, list(self.weights.values()), default=0.0, return_dtype=pl.Float64)
        sign = pl.when(RETURNED).then(-1.0).otherwise(1.0)
        counted = pl.all_horizontal(pl.col(c).is_not_null() for c in self.columns) & pl.col(
            "event_type").is_in(kinds)
        if self.requires is not None:
            counted = counted & pl.col(self.requires).is_not_null()
        key = pl.concat_str([pl.col(c).cast(pl.String) for c in self.columns], separator=":")
        return (
            events.lazy()
            .filter(counted)
            .group_by("user_id", key.alias("key"))
            .agg(total=(weight * sign * self.half_life.growth_expr(pl.col("ts"), anchor)).sum())
            .filter(~pl.col("total").is_between(0.0, MIN_TOTAL, closed="none"))  # as none
            .collect()
        )

    def values(self, anchored: Mapping[str, float], anchor: datetime,
               now: datetime) -> dict[str, float]:
        """Each key's count at `now` from its anchored total, never below zero; a total
        under MIN_TOTAL counts as none."""
        factor = self.half_life.factor(anchor, now)
        return {key: value if total >= MIN_TOTAL and (value := total * factor) > 0.0 else 0.0
                for key, total in anchored.items()}

    def live(self, event: Event, anchor: datetime) -> tuple[str, float] | None:
        """The (key, addition) one event makes to the anchored totals, if any."""
        parts = [getattr(event, column) for column in self.columns]
        weight = self.weights.get(event.event_type)
        if weight is None or any(part is None for part in parts):
            return None
        if self.requires is not None and getattr(event, self.requires) is None:
            return None
        key = ":".join(str(part) for part in parts)
        return key, weight * event.sign * self.half_life.growth(event.ts, anchor)


def _only(kind: EventType) -> Mapping[EventType, float]:
    return MappingProxyType({kind: 1.0})


CHANNEL = ("channel",)
CHANNEL_HOUR = ("channel", "local_hour")
CATEGORY_AFFINITY = DecayedCount("category_affinity", ("category",), HalfLife(days=30))
PRICE_AFFINITY = DecayedCount("price_affinity", ("price_band",), HalfLife(days=30))
BRAND_AFFINITY = DecayedCount("brand_affinity", ("brand",), HalfLife(days=45))
ENGAGEMENT_HALF_LIFE = HalfLife(days=60)
CHANNEL_SENDS = DecayedCount("channel_sends", CHANNEL, ENGAGEMENT_HALF_LIFE,
                             _only(EventType.MESSAGE_SENT))
CHANNEL_OPENS = DecayedCount("channel_opens", CHANNEL, ENGAGEMENT_HALF_LIFE,
                             _only(EventType.MESSAGE_OPEN))
CHANNEL_CLICKS = DecayedCount("channel_clicks", CHANNEL, ENGAGEMENT_HALF_LIFE,
                              _only(EventType.MESSAGE_CLICK))
CHANNEL_CONVERSIONS = DecayedCount("channel_conversions", CHANNEL, ENGAGEMENT_HALF_LIFE,
                                   _only(EventType.PURCHASE), requires="campaign_id")
HOURLY_OPENS = DecayedCount("hourly_opens", CHANNEL_HOUR, ENGAGEMENT_HALF_LIFE,
                            _only(EventType.MESSAGE_OPEN))
HOURLY_ACTIVITY = DecayedCount("hourly_activity", ("local_hour",), HalfLife(days=30))
DECAYED_COUNTS = (CATEGORY_AFFINITY, BRAND_AFFINITY, PRICE_AFFINITY, CHANNEL_SENDS,
                  CHANNEL_OPENS, CHANNEL_CLICKS, CHANNEL_CONVERSIONS, HOURLY_OPENS,
                  HOURLY_ACTIVITY)
