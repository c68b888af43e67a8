"""The vectorized rules agree with a plain reading of each offer's definition."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from decisions.candidates import CandidateTable, UserFacts, of_user, removed_by
from decisions.journeys import CART_JOURNEYS
from features.contract.offers import Eligibility, Offer
from features.contract.schema import Channel, Journey, LifecycleStage, OfferKind

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
SEGMENTS = ("buyer", "prospect", "app", "country:FR")
CATEGORIES = ("coffee", "shoes", "pet_food")


@st.composite
def offers(draw: st.DrawFn, index: int) -> Offer:
    start = draw(st.one_of(st.none(), st.integers(-5, 5)))
    length = draw(st.integers(1, 10))
    return Offer(
        offer_id=f"o{index}", kind=draw(st.sampled_from(list(OfferKind))),
        value=5, cost=draw(st.sampled_from([0.0, 2.0, 5.0])),
        categories=draw(st.lists(st.sampled_from(CATEGORIES), max_size=2, unique=True)),
        channels=draw(st.lists(st.sampled_from(list(Channel)), max_size=2, unique=True)),
        journeys=draw(st.lists(st.sampled_from(list(Journey)), max_size=2, unique=True)),
        min_order_value=draw(st.sampled_from([0.0, 20.0, 60.0])),
        eligibility=Eligibility(
            lifecycle_stages=draw(st.lists(st.sampled_from(list(LifecycleStage)), max_size=2,
                                           unique=True)),
            segments=draw(st.lists(st.sampled_from(SEGMENTS), max_size=2, unique=True))),
        budget=draw(st.sampled_from([None, 10.0, 100.0])),
        max_per_user=draw(st.sampled_from([None, 1, 3])),
        valid_from=None if start is None else NOW + timedelta(days=start),
        valid_to=None if start is None else NOW + timedelta(days=start + length))


def plainly_eligible(offer: Offer, facts: UserFacts, interest: float,
                     spent: dict[str, float], limits_known: bool = True) -> bool:
    return ((limits_known or (offer.budget is None and offer.max_per_user is None))
            and (offer.valid_from is None or offer.valid_from <= NOW)
            and (offer.valid_to is None or NOW < offer.valid_to)
            and (not offer.journeys or facts.journey in offer.journeys)
            and (not offer.eligibility.lifecycle_stages
                 or facts.stage in offer.eligibility.lifecycle_stages)
            and (not offer.eligibility.segments
                 or bool(set(offer.eligibility.segments) & facts.segments))
            and bool((set(offer.channels) or set(Channel)) & facts.reachable)
            and (not offer.categories or interest > 0)
            and (facts.journey not in CART_JOURNEYS or offer.min_order_value <= facts.cart_value)
            and (facts.journey not in CART_JOURNEYS or not facts.cart_categories
                 or not offer.categories or bool(set(offer.categories)
                                                 & set(facts.cart_categories)))
            and (offer.max_per_user is None
                 or facts.given.get(offer.offer_id, 0) < offer.max_per_user)
            and (offer.budget is None
                 or spent.get(offer.offer_id, 0.0) + offer.cost <= offer.budget)
            and (not facts.holdout or offer.kind is OfferKind.CONTENT))


def _facts(data: st.DataObject, catalog: list[Offer]) -> UserFacts:
    count = len(catalog)
    return UserFacts(
        journey=data.draw(st.one_of(st.none(), st.sampled_from([j.value for j in Journey]))),
        stage=data.draw(st.sampled_from([s.value for s in LifecycleStage])),
        segments=frozenset(data.draw(st.lists(st.sampled_from(SEGMENTS), unique=True))),
        reachable=frozenset(data.draw(st.lists(st.sampled_from([c.value for c in Channel]),
                                               unique=True))),
        interest=np.array(data.draw(st.lists(st.sampled_from([0.0, 0.3]), min_size=count,
                                             max_size=count))),
        cart_value=data.draw(st.sampled_from([0.0, 20.0, 30.0, 60.0, 100.0])),
        given={o.offer_id: data.draw(st.integers(0, 3)) for o in catalog},
        holdout=data.draw(st.booleans()),
        cart_categories=tuple(data.draw(st.lists(st.sampled_from(CATEGORIES), max_size=2,
                                                 unique=True))))


@settings(max_examples=100, deadline=None)
@given(data=st.data(), count=st.integers(0, 8), users=st.integers(0, 4))
def test_the_table_agrees_with_each_offer_for_each_user(data: st.DataObject, count: int,
                                                        users: int) -> None:
    catalog = [data.draw(offers(i)) for i in range(count)]
    table = CandidateTable.of(catalog)
    spent = {o.offer_id: data.draw(st.sampled_from([0.0, 10.0, 200.0])) for o in catalog}
    everyone = [_facts(data, catalog) for _ in range(users)]
    limits_known = data.draw(st.booleans())  # not known: Redis is unreachable
    eligible, verdicts = table.eligible(everyone, NOW, spent, limits_known)
    assert len(eligible) == users
    for user, facts in enumerate(everyone):
        expected = [i for i, offer in enumerate(catalog) if plainly_eligible(
            offer, facts, float(facts.interest[i]), spent, limits_known)]
        assert eligible[user].tolist() == expected
        removed = removed_by(table, of_user(verdicts, user))
        assert set(removed) == {catalog[i].offer_id for i in range(count) if i not in expected}


def test_an_offers_window_holds_to_the_fraction_of_a_second() -> None:
    half = timedelta(milliseconds=500)
    catalog = [Offer(offer_id="ends", kind=OfferKind.CONTENT, value=0, cost=0,
                     valid_to=NOW + half),
               Offer(offer_id="starts", kind=OfferKind.CONTENT, value=0, cost=0,
                     valid_from=NOW + half)]
    table = CandidateTable.of(catalog)

    def valid(at: datetime) -> list[bool]:
        return [bool(flag) for flag in table.rules([], at, {})["valid_now"][0]]

    assert valid(NOW) == [True, False]  # whole seconds ended one early, started one early
    assert valid(NOW + half) == [False, True]


def _browsing(interest: list[float], **changes: object) -> UserFacts:
    facts = UserFacts(journey=None, stage="active", segments=frozenset({"buyer"}),
                      reachable=frozenset({"email"}), interest=np.array(interest),
                      cart_value=0.0, given={}, holdout=False)
    return replace(facts, **changes)  # type: ignore[arg-type]


def test_each_users_rules_are_their_own_in_a_call() -> None:
    """A cart user's rule (offers naming the cart's categories) and a browsing user's
    (any offer of a category they show interest in) decided in one call: each gets what
    they get alone."""
    catalog = [Offer(offer_id="coffee", kind=OfferKind.VOUCHER, value=10, cost=2,
                     categories=["coffee"]),
               Offer(offer_id="any", kind=OfferKind.VOUCHER, value=10, cost=2)]
    table = CandidateTable.of(catalog)
    carting = _browsing([0.0, 0.0], journey="cart_abandoned", cart_value=50.0,
                        cart_categories=("shoes",))
    browsing = _browsing([0.4, 0.0])
    alone = [table.eligible([facts], NOW, {})[0][0].tolist() for facts in (carting, browsing)]
    together = [found.tolist() for found in table.eligible([carting, browsing], NOW, {})[0]]
    assert alone == together == [[1], [0, 1]]


def test_a_cart_at_exactly_the_minimum_order_value_reaches_it() -> None:
    table = CandidateTable.of([Offer(offer_id="o", kind=OfferKind.VOUCHER, value=10,
                                     cost=2, min_order_value=20.0)])
    at = [_browsing([0.0], journey="cart_abandoned", cart_value=value)
          for value in (19.99, 20.0)]
    assert [found.tolist() for found in table.eligible(at, NOW, {})[0]] == [[], [0]]


def test_with_limits_unknown_an_offer_with_a_budget_alone_is_not_given() -> None:
    """Redis unreachable: what was spent is unknown, so an offer with a budget (and no
    max_per_user) is held back with those with a max_per_user; an offer with neither is
    given."""
    catalog = [Offer(offer_id="budget", kind=OfferKind.VOUCHER, value=10, cost=2,
                     budget=1000.0),
               Offer(offer_id="per-user", kind=OfferKind.VOUCHER, value=10, cost=2,
                     max_per_user=5),
               Offer(offer_id="free", kind=OfferKind.VOUCHER, value=10, cost=2)]
    table = CandidateTable.of(catalog)
    eligible, verdicts = table.eligible([_browsing([0.0] * 3)], NOW, {}, limits_known=False)
    assert eligible[0].tolist() == [2]
    assert set(removed_by(table, of_user(verdicts, 0))) == {"budget", "per-user"}
    assert table.eligible([_browsing([0.0] * 3)], NOW, {})[0][0].tolist() == [0, 1, 2]
