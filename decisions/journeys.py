"""What a journey tells a decision about the user's moment: the categories it is about.

In the cart journeys a message is about what is left in the cart; in the browsing
journeys (browse abandonment: a category or product viewed, an item wishlisted) about what
the user looked at last. Those categories lead the decision's own (and so the items
recommended), and in the cart journeys an offer restricted to categories must name one of
the cart's (decisions/candidates.py). The uninstall journey says the app is gone, before
its event may have arrived. Every journey also changes the offer model's scores through
its journey columns.
"""

from __future__ import annotations

from dataclasses import replace

from features.contract.schema import Journey
from features.session import SessionContext
from features.state import UserState

CART_JOURNEYS = frozenset({Journey.CART_ABANDONED.value, Journey.CHECKOUT_ABANDONED.value})
BROWSING_JOURNEYS = frozenset({Journey.CATEGORY_VIEW.value, Journey.PRODUCT_VIEW.value,
                               Journey.WISHLIST.value})


def journey_categories(journey: str | None, session: SessionContext) -> tuple[str, ...]:
    """The categories `journey` is about, the latest first: the cart's in the cart
    journeys, the last browsed in the browsing ones, none in the others."""
    if journey in CART_JOURNEYS:
        return session.cart_categories
    if journey in BROWSING_JOURNEYS:
        return session.recent_categories
    return ()


def as_the_journey_tells(state: UserState, journey: str | None) -> UserState:
    """`state` with what the journey itself says of the user: in `uninstall` the app is gone
    (so push and in-app reach nobody) even when its event has not arrived yet."""
    if journey == Journey.UNINSTALL.value and state.session.app_installed is not False:
        return replace(state, session=replace(state.session, app_installed=False))
    return state
