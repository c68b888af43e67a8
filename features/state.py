"""Everything known about one user, as the decision reads it and as live events change it.

`UserState.apply` is the live path of every feature at once: it gives each definition
(decayed counts, purchase tallies, activity, contacts, session) the event, enriched with
the user's local hour and the price band exactly as the batch pass enriches its log.
The read-time helpers turn the stored state into values at a given moment.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from types import MappingProxyType

from features.activity import ActivitySpan
from features.contacts import ALL_CHANNELS, contact_keys, sent_within
from features.contract.schema import EventType, LifecycleStage
from features.counts import DECAYED_COUNTS
from features.cycles import DEFAULT_CYCLE, RepeatCycle
from features.engagement import DEFAULT_ENGAGEMENT, RESPONSES, SENDS, EngagementRates
from features.event import Event
from features.lifecycle import DEFAULT_RULES, LifecycleRules
from features.local_time import hour_of_week
from features.price_bands import PriceBands, category_bands, top_band
from features.profile import UserProfile
from features.purchases import CATEGORY_PURCHASES, USER_PURCHASES, PurchaseTally
from features.session import SessionContext

COUNTS_BY_NAME = MappingProxyType({count.name: count for count in DECAYED_COUNTS})
_EMPTY: Mapping[str, float] = MappingProxyType({})
RESPONSE_COUNTS = (SENDS, *RESPONSES.values())


@dataclass(frozen=True)
class UserState:
    user_id: str
    anchor: datetime  # the anchor of the decayed counts (the published batch's cut-off)
    profile: UserProfile = field(default_factory=UserProfile)
    activity: ActivitySpan = field(default_factory=ActivitySpan)
    purchases: PurchaseTally = field(default_factory=PurchaseTally)
    category_purchases: Mapping[str, PurchaseTally] = field(default_factory=dict)
    counts: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # anchored totals
    contacts: Mapping[tuple[str, date], int] = field(default_factory=dict)  # sends per day
    last_contact: datetime | None = None
    session: SessionContext = field(default_factory=SessionContext)
    # counts at a moment, computed once: (count name, now) -> key -> value. Not a field of
    # the state's value: `replace` (a live event) starts the new state with an empty one
    _counts_at: dict[tuple[str, datetime], Mapping[str, float]] = field(
        default_factory=dict, init=False, repr=False, compare=False)

    def apply(self, event: Event, bands: PriceBands) -> UserState:
        """The state after one live event."""
        event = replace(event, local_hour_of_week=hour_of_week(event.ts, self.profile.timezone),
                        price_band=bands.band(event.category, event.price))
        counts = dict(self.counts)
        for count in DECAYED_COUNTS:
            update = count.live(event, self.anchor)
            if update is not None:
                key, addition = update
                totals = dict(counts.get(count.name, _EMPTY))
                totals[key] = totals.get(key, 0.0) + addition
                counts[count.name] = totals
        category_purchases = self.category_purchases
        if CATEGORY_PURCHASES.live(event) and event.category is not None:
            tally = category_purchases.get(event.category, PurchaseTally())
            category_purchases = {**category_purchases, event.category: tally.apply(event)}
        contacts = dict(self.contacts)
        for bucket in contact_keys(event):
            contacts[bucket] = contacts.get(bucket, 0) + 1
        last_contact = self.last_contact
        if event.event_type is EventType.MESSAGE_SENT:
            last_contact = max(event.ts, last_contact or event.ts)
        return replace(
            self,
            activity=self.activity.apply(event),
            purchases=(self.purchases.apply(event) if USER_PURCHASES.live(event)
                       else self.purchases),
            category_purchases=category_purchases,
            counts=counts,
            contacts=contacts,
            last_contact=last_contact,
            session=self.session.apply(event),
        )

    def counts_at(self, name: str, now: datetime) -> Mapping[str, float]:
        """A decayed count's values at `now`, by key (computed once per name and moment)."""
        found = self._counts_at.get((name, now))
        if found is None:
            found = self._counts_at[(name, now)] = COUNTS_BY_NAME[name].values(
                self.counts.get(name, _EMPTY), self.anchor, now)
        return found

    def values(self, name: str, now: datetime) -> list[tuple[str, float]]:
        """A decayed count's values at `now`, largest first (say, the top categories)."""
        return sorted(self.counts_at(name, now).items(), key=lambda kv: (-kv[1], kv[0]))

    def engagement(self, population: Mapping[str, Mapping[str, float]], now: datetime,
                   rates: EngagementRates = DEFAULT_ENGAGEMENT) -> dict[str, dict[str, float]]:
        """channel -> open, click and conversion rates, smoothed toward the population's."""
        values = {name: self.counts_at(name, now) for name in RESPONSE_COUNTS}
        return rates.rates(values, population)

    def stage(self, now: datetime, rules: LifecycleRules = DEFAULT_RULES) -> LifecycleStage:
        return rules.stage(self.activity, self.purchases, now, self.profile.signup)

    def sent_within(self, now: datetime, days: int, channel: str = ALL_CHANNELS) -> int:
        """Messages sent on `channel` (or on any) in the last `days` UTC days."""
        buckets = {day: n for (name, day), n in self.contacts.items() if name == channel}
        return sent_within(buckets, now, days)

    def price_band(self, now: datetime) -> int | None:
        """The band (0..2) of the user's largest positive price affinity."""
        return top_band(self.counts_at("price_affinity", now))

    def category_price_bands(self, now: datetime, categories: Iterable[str]) -> dict[str, int]:
        """The band (0..2) the user buys in within each category (features/price_bands.py)."""
        bought = {category: (tally.price_lean, tally.lines)
                  for category, tally in self.category_purchases.items()}
        return category_bands(self.counts_at("price_affinity", now), bought, categories)

    def due_categories(self, cycles: Mapping[str, float], now: datetime,
                       cycle: RepeatCycle = DEFAULT_CYCLE) -> list[tuple[str, float]]:
        return cycle.due_categories(self.category_purchases, cycles, now)
