"""Session context: what the user's latest events leave behind.

The categories last browsed (views, wishlist, cart), the open cart's value, its categories
and when it last changed, a checkout started and not completed, and whether the app is
installed. A purchase empties the cart and ends the checkout.

The cart's categories are those of the items added since the last purchase, the latest
addition first, CART_CATEGORIES at most. Removing an item takes its category off (the
state keeps no quantities per category, so also when another item of it stays), and a
removal that leaves the cart worth nothing empties it. One step (`_cart_step`) serves
both halves: `apply` expects events in time order; `batch` reads the same from a log,
folding each user's cart events since their last purchase with that step.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import polars as pl

from features.contract.schema import EventType
from features.event import RETURNED, Event

RECENT_CATEGORIES = 3
CART_CATEGORIES = 3
ABANDONED_AFTER = timedelta(hours=1)
CENTS = 2  # cart values are rounded to cents: batch and live add prices in other orders
BROWSING = (EventType.VIEW, EventType.WISHLIST, EventType.ADD_TO_CART)
CART = {EventType.ADD_TO_CART: 1, EventType.REMOVE_FROM_CART: -1}
APP = {EventType.APP_INSTALL: True, EventType.APP_UNINSTALL: False}


@dataclass(frozen=True)
class SessionContext:
    recent_categories: tuple[str, ...] = ()  # most recent first
    cart_value: float = 0.0  # added minus removed since the last purchase
    cart_categories: tuple[str, ...] = ()  # in the cart, the latest added first
    cart_updated: datetime | None = None
    checkout_started: datetime | None = None  # since the last purchase
    app_installed: bool | None = None  # None: no install or uninstall seen

    def apply(self, event: Event) -> SessionContext:
        """The context after one more event (the live half)."""
        kind = event.event_type
        state = self
        if kind in BROWSING and event.category is not None:
            others = (c for c in self.recent_categories if c != event.category)
            state = replace(state, recent_categories=(
                event.category, *others)[:RECENT_CATEGORIES])
        if kind in CART:
            value, categories = _cart_step(
                self.cart_value, self.cart_categories, event.category,
                (event.price or 0.0) * (event.quantity or 1),
                removed=kind is EventType.REMOVE_FROM_CART)
            state = replace(state, cart_value=value, cart_categories=categories,
                            cart_updated=event.ts)
        elif kind is EventType.CHECKOUT:
            state = replace(state, checkout_started=event.ts)
        elif kind is EventType.PURCHASE and not event.is_return:
            state = replace(state, cart_value=0.0, cart_categories=(), cart_updated=None,
                            checkout_started=None)
        elif kind in APP:
            state = replace(state, app_installed=APP[kind])
        return state

    @property
    def open_cart_value(self) -> float:
        return max(0.0, self.cart_value)

    def cart_abandoned_at(self, now: datetime) -> datetime | None:
        """When a still-open cart was last touched, once ABANDONED_AFTER has passed."""
        if self.open_cart_value <= 0 or self.cart_updated is None:
            return None
        return self.cart_updated if now - self.cart_updated >= ABANDONED_AFTER else None

    def checkout_abandoned_at(self, now: datetime) -> datetime | None:
        started = self.checkout_started
        return started if started is not None and now - started >= ABANDONED_AFTER else None

    @staticmethod
    def batch(events: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
        """One row per user with the fields above (users without any are left out)."""
        log = events.lazy().sort("ts", maintain_order=True).with_row_index("__order")
        kind = pl.col("event_type")
        last_purchase = (log.filter((kind == EventType.PURCHASE.value) & ~RETURNED)
                         .group_by("user_id").agg(__bought=pl.col("__order").max()))
        since = log.join(last_purchase, on="user_id", how="left").filter(
            pl.col("__bought").is_null() | (pl.col("__order") > pl.col("__bought")))
        direction = kind.replace_strict({k.value: v for k, v in CART.items()}, default=None,
                                        return_dtype=pl.Float64)
        amount = pl.col("price").fill_null(0.0) * pl.col("quantity").fill_null(1)
        cart = since.filter(direction.is_not_null()).group_by("user_id").agg(
            cart_value=(amount * direction).sum().round(CENTS),
            cart_updated=pl.col("ts").sort_by("__order").last(),
            cart_categories=pl.struct("category", amount=amount, removed=direction < 0)
            .sort_by("__order")).with_columns(pl.col("cart_categories").map_elements(
                _cart_categories, return_dtype=pl.List(pl.String)))
        checkout = since.filter(kind == EventType.CHECKOUT.value).group_by("user_id").agg(
            checkout_started=pl.col("ts").sort_by("__order").last())
        browsing = [k.value for k in BROWSING]
        recent = (log.filter(kind.is_in(browsing) & pl.col("category").is_not_null())
                  .sort("__order", descending=True).group_by("user_id", maintain_order=True)
                  .agg(recent_categories=pl.col("category").unique(maintain_order=True)
                       .head(RECENT_CATEGORIES)))
        app = log.filter(kind.is_in([k.value for k in APP])).group_by("user_id").agg(
            app_installed=(kind.sort_by("__order").last() == EventType.APP_INSTALL.value))
        users = pl.concat([f.select("user_id") for f in (cart, checkout, recent, app)]).unique()
        joined = users
        for part in (recent, cart, checkout, app):
            joined = joined.join(part, on="user_id", how="left")
        return joined.with_columns(pl.col("cart_value").fill_null(0.0)).collect()


def _cart_step(value: float, categories: tuple[str, ...], category: str | None,
               amount: float, removed: bool) -> tuple[float, tuple[str, ...]]:
    """The cart's value and categories after adding or removing an item worth `amount`."""
    value = round(value - amount if removed else value + amount, CENTS)
    if removed:
        return value, () if value <= 0 else tuple(c for c in categories if c != category)
    if category is None:
        return value, categories
    others = (c for c in categories if c != category)
    return value, (category, *others)[:CART_CATEGORIES]


def _cart_categories(events: pl.Series) -> list[str]:
    """The cart's categories after a user's cart events since their last purchase (in
    order; each a struct of category, amount and removed), folded with `_cart_step`."""
    value, categories = 0.0, tuple[str, ...]()
    for event in events:
        value, categories = _cart_step(value, categories, event["category"], event["amount"],
                                       event["removed"])
    return list(categories)
