"""Calendar of the simulated window: local midnights in each time zone, weekdays."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from training.synthetic.population import TIMEZONES

DAY = 86_400


class Clock:
    """Days of the window, numbered from 0, in every time zone of the world."""

    def __init__(self, start: date, days: int) -> None:
        self.start = start
        self.days = days
        self.start_epoch = int(datetime.combine(start, time(), UTC).timestamp())
        self.end_epoch = self.start_epoch + days * DAY
        noon = [datetime.combine(start + timedelta(days=d), time(12)) for d in range(days)]
        self.offsets = np.array([
            [int(moment.replace(tzinfo=ZoneInfo(zone)).utcoffset().total_seconds())  # type: ignore[union-attr]
             for moment in noon]
            for zone in TIMEZONES
        ])  # (zones, days): local time minus UTC, in seconds

    def local_midnight(self, tz_index: np.ndarray, day: np.ndarray | int) -> np.ndarray:
        """UTC epoch seconds at which `day` begins in each user's zone."""
        day = np.asarray(day)
        offset = self.offsets[tz_index, np.clip(day, 0, self.days - 1)]
        return np.asarray(self.start_epoch + day * DAY - offset)

    def weekday(self, day: np.ndarray | int) -> np.ndarray:
        """0 = Monday ... 6 = Sunday, for day numbers of the window."""
        return (self.start.weekday() + np.asarray(day)) % 7

    def timestamp(self, day: int) -> datetime:
        return datetime.combine(self.start + timedelta(days=day), time(), UTC)
