"""The session's live half (`apply`, event by event) and batch half (`batch`, over a log)
agree on any sequence of browsing, cart and purchase events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import reduce

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from features.contract.schema import EventType
from features.event import Event
from features.session import ABANDONED_AFTER, MAX_CART_ITEMS, SessionContext

T = datetime(2026, 6, 1, tzinfo=UTC)
KINDS = (EventType.VIEW, EventType.ADD_TO_CART, EventType.REMOVE_FROM_CART,
         EventType.CHECKOUT, EventType.PURCHASE)
COLUMNS: dict[str, pl.DataType | type[pl.DataType]] = {
    "user_id": pl.String, "ts": pl.Datetime("us", "UTC"), "event_type": pl.String,
    "category": pl.String, "price": pl.Float64, "quantity": pl.Int64}


@st.composite
def logs(draw: st.DrawFn) -> list[Event]:
    steps = draw(st.lists(st.tuples(
        st.sampled_from(("u1", "u2")), st.sampled_from(KINDS),
        st.sampled_from((None, "shoes", "books", "toys", "bags", "pets")),
        st.sampled_from((None, 0.0, 0.004, 5.5, 10.0, 19.99)),
        st.sampled_from((None, 1, 2, -1))),
        max_size=40))
    return [Event(user, T + timedelta(minutes=n), kind, category=category, price=price,
                  quantity=quantity)
            for n, (user, kind, category, price, quantity) in enumerate(steps)]


@settings(max_examples=150, deadline=None)
@given(events=logs())
def test_live_and_batch_agree_on_any_log(events: list[Event]) -> None:
    frame = pl.DataFrame([{name: getattr(e, name) if name != "event_type" else e.event_type.value
                           for name in COLUMNS} for e in events], schema=COLUMNS)
    batch = {row["user_id"]: row for row in SessionContext.batch(frame).iter_rows(named=True)}
    for user in ("u1", "u2"):
        live = reduce(SessionContext.apply, [e for e in events if e.user_id == user],
                      SessionContext())
        row = batch.get(user)
        if row is None:
            assert (live.cart_lines, live.recent_categories) == ((), ())
            continue
        assert live.cart_lines == tuple((line["category"], line["items"])
                                        for line in row["cart_lines"] or ())
        assert live.recent_categories == tuple(row["recent_categories"] or ())
        assert (live.cart_value, live.cart_partial) == (row["cart_value"], row["cart_partial"])
        assert live.cart_updated == row["cart_updated"]
        assert live.checkout_started == row["checkout_started"]


def test_a_cart_or_checkout_is_abandoned_once_the_hour_has_passed() -> None:
    ready = T + ABANDONED_AFTER
    session = SessionContext(cart_value=10.0, cart_updated=T, checkout_started=T)
    assert session.cart_abandoned_at(ready) == session.checkout_abandoned_at(ready) == T
    early = ready - timedelta(microseconds=1)
    assert session.cart_abandoned_at(early) is session.checkout_abandoned_at(early) is None


def _session(*steps: tuple[EventType, str | None, float | None, int | None]) -> SessionContext:
    events = [Event("u1", T + timedelta(minutes=n), kind, category=category, price=price,
                    quantity=quantity) for n, (kind, category, price, quantity) in enumerate(steps)]
    return reduce(SessionContext.apply, events, SessionContext())


def test_the_cart_counts_items_and_cents_as_documented() -> None:
    """Removing takes off as many items as the event names, whatever its sign; a category
    counts at most MAX_CART_ITEMS; the value is rounded to cents after each event."""
    add, remove = EventType.ADD_TO_CART, EventType.REMOVE_FROM_CART
    session = _session(*[(add, "shoes", 0.1, 1)] * 3)
    assert (session.cart_value, session.cart_lines) == (0.3, (("shoes", 3),))
    session = _session(*[(add, "shoes", 0.1, 1)] * 3, (remove, "shoes", 0.1, -2))
    assert (session.cart_value, session.cart_lines) == (0.1, (("shoes", 1),))
    session = _session((add, "books", 1.0, 300))
    assert session.cart_lines == (("books", MAX_CART_ITEMS),) and session.cart_value == 300.0


def test_a_wishlist_is_browsing_and_the_last_app_event_tells_if_it_is_installed() -> None:
    steps = [(EventType.VIEW, "shoes", None, None), (EventType.WISHLIST, "toys", None, None),
             (EventType.APP_INSTALL, None, None, None), (EventType.APP_UNINSTALL, None, None, None)]
    live = _session(*steps)
    assert live.recent_categories == ("toys", "shoes") and live.app_installed is False
    frame = pl.DataFrame([{"user_id": "u1", "ts": T + timedelta(minutes=n),
                           "event_type": kind.value, "category": category, "price": price,
                           "quantity": quantity}
                          for n, (kind, category, price, quantity) in enumerate(steps)],
                         schema=COLUMNS)
    row = SessionContext.batch(frame).row(0, named=True)
    assert row["recent_categories"] == ["toys", "shoes"] and row["app_installed"] is False
