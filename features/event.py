"""One event as the live path sees it: a typed row of the data contract's events table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from features.contract.schema import EventType

RETURNED = pl.col("quantity").fill_null(1) < 0  # the batch form of `Event.is_return`


@dataclass(frozen=True)
class Event:
    user_id: str
    ts: datetime
    event_type: EventType
    event_id: str | None = None
    item_id: str | None = None
    category: str | None = None
    brand: str | None = None
    price: float | None = None
    quantity: int | None = None
    channel: str | None = None
    campaign_id: str | None = None
    offer_id: str | None = None
    journey: str | None = None
    local_hour_of_week: int | None = None  # in the user's zone, 0 = Monday 00h (local_time.py)

    @classmethod
    def from_row(cls, row: Mapping[str, object]) -> Event:
        """From a row of a loaded events frame (`frame.iter_rows(named=True)`)."""
        fields = {name: row.get(name) for name in cls.__dataclass_fields__}
        fields["event_type"] = EventType(str(row["event_type"]))
        return cls(**fields)  # type: ignore[arg-type]

    @property
    def is_return(self) -> bool:
        """A negative quantity: goods coming back (an empty quantity means 1)."""
        return self.quantity is not None and self.quantity < 0

    @property
    def sign(self) -> int:
        """-1 for a return, else 1."""
        return -1 if self.is_return else 1
