"""Lifecycle stage from purchase recency, frequency and tenure, by rules a team can tune.

    new       first seen at most `new_days` ago, at most one buying occasion
    loyal     bought within `active_days`, with at least `loyal_occasions` occasions
    active    bought within `active_days` (never bought: seen within `active_days`)
    at_risk   last purchase (or, never bought, last visit) within `at_risk_days`
    dormant   within `dormant_days`
    churned   longer ago than that
A regular buyer (at least `regular_occasions` occasions) is only at risk once overdue: the
active and at-risk windows shift later by as much as it takes for the active window to
reach `overdue_cycles` times their mean interval between purchases, by at most
`at_risk_days - active_days` (dormant and churned do not move).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from features.activity import ActivitySpan
from features.contract.schema import LifecycleStage
from features.purchases import PurchaseTally

DAY = timedelta(days=1)


@dataclass(frozen=True)
class LifecycleRules:
    new_days: float = 30.0
    active_days: float = 30.0
    at_risk_days: float = 60.0
    dormant_days: float = 120.0
    loyal_occasions: int = 4
    overdue_cycles: float = 2.0
    regular_occasions: int = 3

    def stage(self, activity: ActivitySpan, purchases: PurchaseTally, now: datetime,
              signup: datetime | None = None) -> LifecycleStage:
        first = min(t for t in (signup, activity.first_seen, purchases.first, now) if t)
        if now - first <= self.new_days * DAY and (
                purchases.occasions <= 1):
            return LifecycleStage.NEW
        last = purchases.last or activity.last_seen or first
        # durations, not float days: a window's end is exact to the microsecond
        idle, shift = now - last, timedelta(0)
        cycle = purchases.mean_interval()
        if cycle is not None and purchases.occasions >= self.regular_occasions:
            most = (self.at_risk_days - self.active_days) * DAY
            shift = min(max(self.overdue_cycles * cycle - self.active_days * DAY, timedelta(0)),
                        most)
        if idle <= self.active_days * DAY + shift:
            if purchases.occasions >= self.loyal_occasions:
                return LifecycleStage.LOYAL
            return LifecycleStage.ACTIVE
        if idle <= min(self.at_risk_days * DAY + shift, self.dormant_days * DAY):
            return LifecycleStage.AT_RISK
        if idle <= self.dormant_days * DAY:
            return LifecycleStage.DORMANT
        return LifecycleStage.CHURNED


DEFAULT_RULES = LifecycleRules()
