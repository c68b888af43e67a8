"""The batch pass: every feature of every user from a data set, as of a cut-off.

`compute_features` enriches the log once (local hours, price bands) and hands it to each
feature's batch half; the result stays in long polars frames, which the store packs for
all users at once. `BatchFeatures.state` rebuilds one user's `UserState` from them, in
full (the store keeps a compact top of each), for tests and tools.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from features.activity import ActivitySpan
from features.contacts import contact_counts, last_contacts
from features.contract.schema import EVENTS, ITEMS, USERS
from features.contract.tables import load_table
from features.counts import DECAYED_COUNTS
from features.cycles import DEFAULT_CYCLE, RepeatCycle
from features.engagement import EngagementRates
from features.local_time import with_hour_of_week
from features.price_bands import PriceBands
from features.profile import UserProfile
from features.purchases import CATEGORY_PURCHASES, USER_PURCHASES, PurchaseTally
from features.session import SessionContext
from features.state import UserState
from nbo.errors import DataContractError

PURCHASE_PREFIX = "p_"  # the user-level purchase tally's columns in `users`
EVENT_COLUMNS = ("user_id", "ts", "event_type", "category", "brand", "price", "quantity",
                 "channel", "campaign_id")  # what the features read


@dataclass(frozen=True)
class BatchFeatures:
    anchor: datetime
    users: pl.DataFrame  # one row per user: profile, activity, purchases (p_*), session
    counts: Mapping[str, pl.DataFrame]  # feature name -> (user_id, key, total)
    category_purchases: pl.DataFrame  # (user_id, category, tally fields)
    contacts: pl.DataFrame  # (user_id, channel, day, sent)
    bands: PriceBands
    cycles: Mapping[str, float]  # category -> repeat cycle in days
    engagement: Mapping[str, Mapping[str, float]]  # response -> channel -> population rate

    def state(self, user_id: str) -> UserState | None:
        """One user's full state (slow: filters every frame)."""
        rows = self.users.filter(pl.col("user_id") == user_id).to_dicts()
        if not rows:
            return None
        row = rows[0]
        mine = pl.col("user_id") == user_id
        return UserState(
            user_id=user_id,
            anchor=self.anchor,
            profile=UserProfile.from_row(row),
            activity=ActivitySpan(row["first_seen"], row["last_seen"], row["events"]),
            purchases=_tally(row, PURCHASE_PREFIX),
            category_purchases={r["category"]: PurchaseTally.from_row(r)
                                for r in self.category_purchases.filter(mine).to_dicts()},
            counts={name: dict(frame.filter(mine).select("key", "total").iter_rows())
                    for name, frame in self.counts.items() if frame.filter(mine).height},
            contacts={(channel, day): sent for _, channel, day, sent
                      in self.contacts.filter(mine).iter_rows()},
            last_contact=row["last_contact"],
            session=SessionContext(
                recent_categories=tuple(row["recent_categories"] or ()),
                cart_value=row["cart_value"],
                cart_lines=tuple((line["category"], line["items"])
                                 for line in row["cart_lines"] or ()),
                cart_partial=row["cart_partial"],
                cart_updated=row["cart_updated"],
                checkout_started=row["checkout_started"],
                app_installed=row["app_installed"],
            ),
        )


def _tally(row: Mapping[str, Any], prefix: str) -> PurchaseTally:
    return PurchaseTally.from_row({name: row[prefix + name]
                                   for name in PurchaseTally.__dataclass_fields__})


def load_inputs(directory: Path, extra_columns: tuple[str, ...] = ()) -> tuple[
        pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The valid rows of the events, users and items a feature pass reads (see `nbo
    validate` for the rest), keeping only the event columns it needs and `extra_columns`."""
    return (load_table(directory, EVENTS, columns=(*EVENT_COLUMNS, *extra_columns)).frame,
            load_table(directory, USERS).frame,
            load_table(directory, ITEMS, columns=("category", "price")).frame)


def load_features(directory: Path, anchor: datetime | None = None,
                  cycle: RepeatCycle = DEFAULT_CYCLE) -> BatchFeatures:
    """Features from a data set's valid rows: none up to `anchor` is refused (a store of
    no one would replace the one served)."""
    events, users, items = load_inputs(directory)
    anchor = None if anchor is None else as_utc(anchor)
    first = events["ts"].min()
    if not isinstance(first, datetime) or anchor is not None and first > anchor:
        up_to = "" if anchor is None else f" up to {anchor.isoformat()}"
        raise DataContractError(f"{directory}: no valid events{up_to} to compute features "
                                f"from (`nbo validate {directory}` lists the problems)")
    return compute_features(events, users, items, anchor, cycle)


def as_utc(moment: datetime) -> datetime:
    """`moment` in UTC, the zone of the store's days (kept.py); a naive one read as UTC,
    whatever this machine's zone."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def compute_features(events: pl.DataFrame, users: pl.DataFrame, items: pl.DataFrame,
                     anchor: datetime | None = None,
                     cycle: RepeatCycle = DEFAULT_CYCLE) -> BatchFeatures:
    """Every feature over the events up to `anchor` (default: the last event's time)."""
    if anchor is None:
        latest = events["ts"].max()
        if not isinstance(latest, datetime):
            raise ValueError("no events to compute features from; pass an anchor")
        anchor = latest
    anchor = as_utc(anchor)
    events = events.select(EVENT_COLUMNS).filter(pl.col("ts") <= anchor)
    priced = items if items["price"].drop_nulls().len() else events
    bands = PriceBands.from_prices(priced.select("category", "price"))
    log = bands.with_band(with_hour_of_week(events, users.select("user_id", "timezone")))
    category_purchases = CATEGORY_PURCHASES.batch(log)
    counts = {count.name: count.batch(log, anchor) for count in DECAYED_COUNTS}
    return BatchFeatures(
        anchor=anchor,
        users=_users(log, users),
        counts=counts,
        category_purchases=category_purchases,
        contacts=contact_counts(log),
        bands=bands,
        cycles=cycle.category_cycles(category_purchases),
        engagement=EngagementRates.population(counts),
    )


def _users(log: pl.DataFrame, users: pl.DataFrame) -> pl.DataFrame:
    """One row per user of either table with the per-user features."""
    purchases = USER_PURCHASES.batch(log)
    purchases = purchases.rename({c: PURCHASE_PREFIX + c for c in purchases.columns
                                  if c != "user_id"})
    everyone = pl.concat([users.select("user_id"), log.select("user_id")]).unique()
    joined = everyone.join(users, on="user_id", how="left")
    for part in (ActivitySpan.batch(log), purchases, SessionContext.batch(log),
                 last_contacts(log)):
        joined = joined.join(part, on="user_id", how="left")
    counters = [PURCHASE_PREFIX + name
                for name in ("lines", "occasions", "returns", "price_lean")]
    return joined.with_columns(pl.col("events", *counters).fill_null(0),
                               pl.col("cart_value", PURCHASE_PREFIX + "amount").fill_null(0.0),
                               pl.col("cart_partial").fill_null(False)).sort("user_id")
