"""One event as the live path sees it: a typed row of the data contract's events table."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import orjson
import polars as pl

from features.contract.schema import EVENTS, EventType

RETURNED = pl.col("quantity").fill_null(1) < 0  # the batch form of `Event.is_return`
CONTRACT_COLUMNS = tuple(column.name for column in EVENTS.columns)


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
    propensity: float | None = None
    local_hour_of_week: int | None = None  # in the user's zone, 0 = Monday 00h (local_time.py)
    price_band: int | None = None  # the price's band within its category (price_bands.py)

    @classmethod
    def from_row(cls, row: Mapping[str, object]) -> Event:
        """From a row of a loaded events frame (`frame.iter_rows(named=True)`)."""
        fields = {name: row.get(name) for name in cls.__dataclass_fields__}
        fields["event_type"] = EventType(str(row["event_type"]))
        return cls(**fields)  # type: ignore[arg-type]

    def record(self) -> dict[str, object]:
        """The data contract's columns (derived fields left out)."""
        return {name: getattr(self, name) for name in CONTRACT_COLUMNS}

    def to_json(self) -> bytes:
        """The contract's columns that are set, as JSON."""
        return orjson.dumps({k: v for k, v in self.record().items() if v is not None})

    @classmethod
    def from_json(cls, raw: bytes | str) -> Event:
        record = orjson.loads(raw)
        return cls.from_row({**record, "ts": datetime.fromisoformat(record["ts"])})

    @property
    def local_hour(self) -> int | None:
        """The hour of the day in the user's zone."""
        return None if self.local_hour_of_week is None else self.local_hour_of_week % 24

    @property
    def is_return(self) -> bool:
        """A negative quantity: goods coming back (an empty quantity means 1)."""
        return self.quantity is not None and self.quantity < 0

    @property
    def sign(self) -> int:
        """-1 for a return, else 1."""
        return -1 if self.is_return else 1
