"""Session context: what the user's latest events leave behind.

The categories last browsed (views, wishlist, cart), the open cart's value, its lines
and when it last changed, a checkout started and not completed, and whether the app is
installed. A purchase empties the cart and ends the checkout.

The cart (`Cart`): its value and its lines, the categories in it with how many items of
each, counted since the last purchase, the category added to last first. It keeps
CART_CATEGORIES lines: adding to a fourth category pushes out the oldest, and the cart is
then `partial` (its lines may miss a category it holds) until it is emptied. Removing items
takes them off their category's count, and the category goes with its last item; a partial
cart whose value falls to nothing counts as emptied. One step (`Cart.step`) serves both
halves: `apply` expects events in time order; `batch` reads the same from a log, folding
each user's cart events since their last purchase with that step (so the value too is the
same sum, rounded to cents after each event, in both).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import NamedTuple

import polars as pl

from features.contract.schema import EventType
from features.event import RETURNED, Event

RECENT_CATEGORIES = 3
CART_CATEGORIES = 3
MAX_CART_ITEMS = 255  # a category's count stops there (the packed record keeps a byte)
ABANDONED_AFTER = timedelta(hours=1)
CENTS = 2  # cart values are rounded to cents after each event
BROWSING = (EventType.VIEW, EventType.WISHLIST, EventType.ADD_TO_CART)
CART = (EventType.ADD_TO_CART, EventType.REMOVE_FROM_CART)
APP = {EventType.APP_INSTALL: True, EventType.APP_UNINSTALL: False}
CartLines = tuple[tuple[str, int], ...]  # (category, items), the latest added first
CART_LINE = pl.Struct({"category": pl.String, "items": pl.Int64})
CART_EVENTS = ("__cart_category", "__cart_price", "__cart_quantity", "__cart_removed")


class Cart(NamedTuple):
    value: float = 0.0  # added minus removed
    lines: CartLines = ()
    partial: bool = False  # the lines may miss a category in the cart

    def step(self, category: str | None, price: float | None, quantity: int | None,
             removed: bool) -> Cart:
        """The cart after adding or removing `quantity` (1 when none) items of `category`
        at `price` each."""
        items = abs(quantity or 1)
        amount = (price or 0.0) * items
        if removed:
            value = round(self.value - amount, CENTS)
            if self.partial and amount > 0 and value <= 0:
                return Cart(value)  # as far as its value tells, nothing is left
            left = ((c, n - items if c == category else n) for c, n in self.lines)
            return Cart(value, tuple((c, n) for c, n in left if n > 0), self.partial)
        value = round(self.value + amount, CENTS)
        if category is None:  # an item of some category the lines cannot name
            return self._replace(value=value, partial=True)
        held = next((n for c, n in self.lines if c == category), 0)
        lines = ((category, min(held + items, MAX_CART_ITEMS)),
                 *((c, n) for c, n in self.lines if c != category))
        return Cart(value, lines[:CART_CATEGORIES], self.partial or len(lines) > CART_CATEGORIES)


@dataclass(frozen=True)
class SessionContext:
    recent_categories: tuple[str, ...] = ()  # most recent first
    cart_value: float = 0.0  # added minus removed since the last purchase (`Cart`)
    cart_lines: CartLines = ()
    cart_partial: bool = False
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
            cart = Cart(self.cart_value, self.cart_lines, self.cart_partial).step(
                event.category, event.price, event.quantity,
                removed=kind is EventType.REMOVE_FROM_CART)
            state = replace(state, cart_value=cart.value, cart_lines=cart.lines,
                            cart_partial=cart.partial, cart_updated=event.ts)
        elif kind is EventType.CHECKOUT:
            state = replace(state, checkout_started=event.ts)
        elif kind is EventType.PURCHASE and not event.is_return:
            state = replace(state, cart_value=0.0, cart_lines=(), cart_partial=False,
                            cart_updated=None, checkout_started=None)
        elif kind in APP:
            state = replace(state, app_installed=APP[kind])
        return state

    @property
    def cart_categories(self) -> tuple[str, ...]:
        """The categories of the cart's lines, the latest added first."""
        return tuple(category for category, _ in self.cart_lines)

    @property
    def cart_categories_known(self) -> tuple[str, ...]:
        """Every category in the cart, or none when its lines may miss one (`partial`)."""
        return () if self.cart_partial else self.cart_categories

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
        removed = kind == EventType.REMOVE_FROM_CART.value
        cart = since.filter(kind.is_in([k.value for k in CART])).group_by("user_id").agg(
            cart_updated=pl.col("ts").sort_by("__order").last(),
            **{column: value.sort_by("__order") for column, value in zip(CART_EVENTS, (
                pl.col("category"), pl.col("price"), pl.col("quantity"), removed),
                strict=True)})
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
        return _with_carts(joined.collect())


def _with_carts(users: pl.DataFrame) -> pl.DataFrame:
    """`users` with each one's cart (`cart_value`, `cart_lines`, `cart_partial`), their cart
    events since their last purchase (the CART_EVENTS lists, in order) folded with
    `Cart.step`."""
    carted = users.filter(pl.col(CART_EVENTS[0]).is_not_null())
    carts: dict[str, Cart] = {}
    for user_id, *events in zip(carted["user_id"].to_list(),
                                *(carted[column].to_list() for column in CART_EVENTS),
                                strict=True):
        cart = Cart()
        for event in zip(*events, strict=True):
            cart = cart.step(*event)
        carts[user_id] = cart
    lines = pl.DataFrame(
        [(user_id, category, items) for user_id, cart in carts.items()
         for category, items in cart.lines],
        schema={"user_id": pl.String, **CART_LINE.to_schema()}, orient="row")
    found = pl.DataFrame({"user_id": list(carts),
                          "cart_value": [cart.value for cart in carts.values()],
                          "cart_partial": [cart.partial for cart in carts.values()]},
                         schema={"user_id": pl.String, "cart_value": pl.Float64,
                                 "cart_partial": pl.Boolean})
    return (users.drop(CART_EVENTS)
            .join(found, on="user_id", how="left")
            .join(lines.group_by("user_id", maintain_order=True).agg(
                cart_lines=pl.struct("category", "items")), on="user_id", how="left")
            .with_columns(pl.col("cart_value").fill_null(0.0),
                          pl.col("cart_partial").fill_null(False)))
