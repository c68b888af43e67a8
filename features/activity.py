"""When a user was first and last seen: tenure (from any event) and inactivity (from what
the user did: a message nbo sent, or an app uninstalled, is no visit)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from features.contract.schema import EventType
from features.event import Event

NOT_SEEN = frozenset({EventType.MESSAGE_SENT, EventType.APP_UNINSTALL})
"""Events that do not show the user around: a prospect we keep messaging, or one who
removed the app, is not active for it (features/lifecycle.py)."""


@dataclass(frozen=True)
class ActivitySpan:
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    events: int = 0

    def apply(self, event: Event) -> ActivitySpan:
        """The span after one more event (the live half)."""
        seen = event.event_type not in NOT_SEEN
        return ActivitySpan(
            first_seen=event.ts if self.first_seen is None else min(self.first_seen, event.ts),
            last_seen=(self.last_seen if not seen
                       else event.ts if self.last_seen is None else max(self.last_seen, event.ts)),
            events=self.events + 1,
        )

    @staticmethod
    def batch(events: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
        """One row per user: first_seen, last_seen, events."""
        return (events.lazy().group_by("user_id")
                .agg(first_seen=pl.col("ts").min(),
                     last_seen=pl.col("ts").filter(
                         ~pl.col("event_type").is_in([kind.value for kind in NOT_SEEN])).max(),
                     events=pl.len())
                .collect())
