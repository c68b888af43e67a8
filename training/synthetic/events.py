"""A columnar buffer of simulated events, turned into a data-contract frame at the end."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from features.contract.schema import Channel, EventType, Journey
from training.synthetic.catalog import Catalog

EVENT_TYPES = tuple(EventType)
CHANNELS = tuple(Channel)
JOURNEYS = tuple(Journey)

# column: (numpy dtype, fill value for events that do not have it)
COLUMNS: dict[str, tuple[type, float]] = {
    "user": (np.int64, -1),
    "ts": (np.int64, 0),
    "event_type": (np.int64, -1),
    "item": (np.int64, -1),
    "category": (np.int64, -1),
    "price": (np.float64, np.nan),
    "quantity": (np.int64, 0),
    "channel": (np.int64, -1),
    "campaign_week": (np.int64, -1),
    "offer": (np.int64, -1),
    "journey": (np.int64, -1),
    "message": (np.int64, -1),
    "propensity": (np.float64, np.nan),
    "propensity_channel": (np.float64, np.nan),
    "propensity_hour": (np.float64, np.nan),
    "propensity_offer": (np.float64, np.nan),
}


class EventBuffer:
    """Collects events as arrays of codes; `frame()` maps codes to the contract's strings."""

    def __init__(self) -> None:
        self._parts: dict[str, list[np.ndarray]] = {name: [] for name in COLUMNS}

    def add(self, event_type: EventType, **columns: np.ndarray | float | int) -> None:
        size = len(np.asarray(columns["user"]))
        if size == 0:
            return
        columns["event_type"] = EVENT_TYPES.index(event_type)
        for name, (dtype, fill) in COLUMNS.items():
            value = columns.get(name, fill)
            self._parts[name].append(np.broadcast_to(np.asarray(value, dtype=dtype), size))

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            name: np.concatenate(parts) if parts else np.empty(0, dtype=COLUMNS[name][0])
            for name, parts in self._parts.items()
        }

    def frame(self, users: np.ndarray, catalog: Catalog, offer_ids: np.ndarray,
              chunk: int) -> pl.DataFrame:
        """Events sorted by time, with ids, as the data contract's `events` columns."""
        columns = self.arrays()
        order = np.lexsort((columns["event_type"], columns["user"], columns["ts"]))
        columns = {name: values[order] for name, values in columns.items()}
        item = columns["item"]
        category = np.where(item >= 0, catalog.item_category[np.maximum(item, 0)],
                            columns["category"])
        brand = np.where(item >= 0, catalog.item_brand[np.maximum(item, 0)], -1)
        journey = columns["journey"]
        week = columns["campaign_week"]
        frame = pl.DataFrame({
            "event_id": pl.Series(np.arange(len(order))).cast(pl.String),
            "user_id": _labels(users, columns["user"]),
            "ts": pl.Series(columns["ts"] * 1_000_000).cast(pl.Datetime("us", "UTC")),
            "event_type": _labels([t.value for t in EVENT_TYPES], columns["event_type"]),
            "item_id": _labels(catalog.item_ids, item),
            "category": _labels(catalog.category_names, category),
            "brand": _labels(catalog.brand_names, brand),
            "price": pl.Series(np.round(columns["price"], 2), nan_to_null=True),
            "quantity": pl.Series(columns["quantity"]),
            "channel": _labels([c.value for c in CHANNELS], columns["channel"]),
            "offer_id": _labels(offer_ids, columns["offer"]),
            "journey": _labels([j.value for j in JOURNEYS], journey),
            "propensity": pl.Series(columns["propensity"], nan_to_null=True),
            "message_id": pl.Series(columns["message"]),
            "propensity_channel": pl.Series(columns["propensity_channel"], nan_to_null=True),
            "propensity_hour": pl.Series(columns["propensity_hour"], nan_to_null=True),
            "propensity_offer": pl.Series(columns["propensity_offer"], nan_to_null=True),
            "campaign_week": pl.Series(week),
        })
        return frame.with_columns(
            event_id=pl.format("e{}-{}", pl.lit(chunk), pl.col("event_id")),
            quantity=pl.when(pl.col("quantity") != 0).then(pl.col("quantity")),
            message_id=pl.when(pl.col("message_id") >= 0)
            .then(pl.format("m{}-{}", pl.lit(chunk), pl.col("message_id"))),
            campaign_id=pl.when(pl.col("campaign_week") >= 0).then(
                pl.format("{}-w{}", pl.col("journey").fill_null("newsletter"),
                          pl.col("campaign_week").cast(pl.String).str.zfill(2))),
        ).drop("campaign_week")


def _labels(names: Sequence[str] | np.ndarray, codes: np.ndarray) -> pl.Series:
    """Names looked up by code; code -1 gives null."""
    lookup = pl.Series(list(names), dtype=pl.String)
    code = pl.col("code")
    return pl.DataFrame({"code": codes}).select(
        pl.when(code >= 0).then(pl.lit(lookup).gather(code.clip(0)))).to_series()
