"""When a user was first and last seen, from any event: tenure and inactivity."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from features.event import Event


@dataclass(frozen=True)
class ActivitySpan:
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    events: int = 0

    def apply(self, event: Event) -> ActivitySpan:
        """The span after one more event (the live half)."""
        return ActivitySpan(
            first_seen=event.ts if self.first_seen is None else min(self.first_seen, event.ts),
            last_seen=event.ts if self.last_seen is None else max(self.last_seen, event.ts),
            events=self.events + 1,
        )

    @staticmethod
    def batch(events: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
        """One row per user: first_seen, last_seen, events."""
        return (events.lazy().group_by("user_id")
                .agg(first_seen=pl.col("ts").min(), last_seen=pl.col("ts").max(),
                     events=pl.len())
                .collect())
