"""Which categories each journey is about."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from decisions.journeys import as_the_journey_tells, journey_categories
from features.contract.schema import Journey
from features.session import SessionContext
from features.state import UserState

SESSION = SessionContext(recent_categories=("toys", "shoes", "books"), cart_value=30.0,
                         cart_lines=(("shoes", 2),))


@pytest.mark.parametrize("journey", list(Journey))
def test_each_journey_is_about_the_cart_the_last_browsed_or_nothing(journey: Journey) -> None:
    expected = {Journey.CART_ABANDONED: ("shoes",), Journey.CHECKOUT_ABANDONED: ("shoes",),
                Journey.CATEGORY_VIEW: ("toys", "shoes", "books"),
                Journey.PRODUCT_VIEW: ("toys", "shoes", "books"),
                Journey.WISHLIST: ("toys", "shoes", "books")}.get(journey, ())
    assert journey_categories(journey.value, SESSION) == expected


def test_no_journey_is_about_no_category() -> None:
    assert journey_categories(None, SESSION) == ()


@pytest.mark.parametrize("installed", [True, None, False])
def test_the_uninstall_journey_says_the_app_is_gone(installed: bool | None) -> None:
    state = UserState("u1", datetime(2026, 6, 1, tzinfo=UTC),
                      session=replace(SESSION, app_installed=installed))
    assert as_the_journey_tells(state, "uninstall").session.app_installed is False
    assert as_the_journey_tells(state, "win_back") is state
