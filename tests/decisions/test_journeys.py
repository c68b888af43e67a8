"""Which categories each journey is about."""

from __future__ import annotations

import pytest

from decisions.journeys import journey_categories
from features.contract.schema import Journey
from features.session import SessionContext

SESSION = SessionContext(recent_categories=("toys", "shoes", "books"), cart_value=30.0,
                         cart_categories=("shoes",))


@pytest.mark.parametrize("journey", list(Journey))
def test_each_journey_is_about_the_cart_the_last_browsed_or_nothing(journey: Journey) -> None:
    expected = {Journey.CART_ABANDONED: ("shoes",), Journey.CHECKOUT_ABANDONED: ("shoes",),
                Journey.CATEGORY_VIEW: ("toys", "shoes", "books"),
                Journey.PRODUCT_VIEW: ("toys", "shoes", "books"),
                Journey.WISHLIST: ("toys", "shoes", "books")}.get(journey, ())
    assert journey_categories(journey.value, SESSION) == expected


def test_no_journey_is_about_no_category() -> None:
    assert journey_categories(None, SESSION) == ()
