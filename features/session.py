"""Session context: what the user's latest events leave behind.

The categories last browsed (views, wishlist, cart), the open cart's value, its lines
and when it last changed, a checkout started and not completed, and whether the app is
installed. A purchase empties the cart and ends the checkout.

The cart's lines are its categories with how many items of each it holds, counted since
the last purchase, the category added to last first, CART_CATEGORIES at most (adding to a
fourth pushes out the oldest). Removing items takes them off their category's count, the
category with its last item, and a removal that leaves the cart worth nothing empties it.
One step (`_cart_step`) serves both halves: `apply` expects events in time order; `batch`
reads the same from a log, folding each user's cart events since their last purchase with
that step.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import polars as pl

from features.contract.schema import EventType
from features.event import RETURNED, Event

RECENT_CATEGORIES = 3
CART_CATEGORIES = 3
MAX_CART_ITEMS = 255  # a category's count stops there (the packed record keeps a byte)
ABANDONED_AFTER = timedelta(hours=1)
CENTS = 2  # cart values are rounded to cents: batch and live add prices in other orders
BROWSING = (EventType.VIEW, EventType.WISHLIST, EventType.ADD_TO_CART)
CART = {EventType.ADD_TO_CART: 1, EventType.REMOVE_FROM_CART: -1}
APP = {EventType.APP_INSTALL: True, EventType.APP_UNINSTALL: False}
CartLines = tuple[tuple[str, int], ...]  # (category, items), the latest added first
CART_LINE = pl.Struct({"category": pl.String, "items": pl.Int64})
CART_EVENTS = ("__cart_category", "__cart_amount", "__cart_items", "__cart_removed")


@dataclass(frozen=True)
class SessionContext:
    recent_categories: tuple[str, ...] = ()  # most recent first
    cart_value: float = 0.0  # added minus removed since the last purchase
    cart_lines: CartLines = ()
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
            quantity = event.quantity or 1
            value, lines = _cart_step(
                self.cart_value, self.cart_lines, event.category, (event.price or 0.0) * quantity,
                max(quantity, 1), removed=kind is EventType.REMOVE_FROM_CART)
            state = replace(state, cart_value=value, cart_lines=lines, cart_updated=event.ts)
        elif kind is EventType.CHECKOUT:
            state = replace(state, checkout_started=event.ts)
        elif kind is EventType.PURCHASE and not event.is_return:
            state = replace(state, cart_value=0.0, cart_lines=(), cart_updated=None,
                            checkout_started=None)
        elif kind in APP:
            state = replace(state, app_installed=APP[kind])
        return state

    @property
    def cart_categories(self) -> tuple[str, ...]:
        """The categories in the cart, the latest added first."""
        return tuple(category for category, _ in self.cart_lines)

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
            **{column: value.sort_by("__order") for column, value in zip(CART_EVENTS, (
                pl.col("category"), amount, pl.max_horizontal(pl.col("quantity").fill_null(1), 1),
                direction < 0), strict=True)})
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
        return _with_cart_lines(joined.with_columns(pl.col("cart_value").fill_null(0.0)).collect())


def _cart_step(value: float, lines: CartLines, category: str | None, amount: float,
               items: int, removed: bool) -> tuple[float, CartLines]:
    """The cart's value and lines after adding or removing `items` of `category` worth
    `amount` in all."""
    value = round(value - amount if removed else value + amount, CENTS)
    if removed:
        if value <= 0:
            return value, ()
        left = ((c, held - items if c == category else held) for c, held in lines)
        return value, tuple((c, held) for c, held in left if held > 0)
    if category is None:
        return value, lines
    held = next((n for c, n in lines if c == category), 0)
    others = ((c, n) for c, n in lines if c != category)
    return value, ((category, min(held + items, MAX_CART_ITEMS)), *others)[:CART_CATEGORIES]


def _with_cart_lines(users: pl.DataFrame) -> pl.DataFrame:
    """`users` with each one's cart lines (`cart_lines`), from their cart events since their
    last purchase (the CART_EVENTS lists, in order) folded with `_cart_step`."""
    carted = users.filter(pl.col(CART_EVENTS[0]).is_not_null())
    owners: list[str] = []
    categories: list[str] = []
    counts: list[int] = []
    for user_id, *steps in zip(carted["user_id"].to_list(),
                               *(carted[column].to_list() for column in CART_EVENTS),
                               strict=True):
        value, lines = 0.0, CartLines()
        for step in zip(*steps, strict=True):
            value, lines = _cart_step(value, lines, *step)
        for category, held in lines:
            owners.append(user_id)
            categories.append(category)
            counts.append(held)
    found = pl.DataFrame({"user_id": owners, "category": categories, "items": counts},
                         schema={"user_id": pl.String, **CART_LINE.to_schema()})
    return users.drop(CART_EVENTS).join(
        found.group_by("user_id", maintain_order=True).agg(
            cart_lines=pl.struct("category", "items")), on="user_id", how="left")
