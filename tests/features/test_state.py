from datetime import UTC, datetime, timedelta
from functools import reduce

import polars as pl
import pytest

from features.contract.schema import Channel, EventType, LifecycleStage
from features.engagement import DEFAULT_ENGAGEMENT
from features.event import Event
from features.pipeline import BatchFeatures, compute_features
from features.session import SessionContext
from features.state import UserState
from models.channels import ChannelModel
from tests.conftest import SplitWorld

T = datetime(2026, 6, 1, tzinfo=UTC)
EVENT_COLUMNS: dict[str, pl.DataType | type[pl.DataType]] = {
    "user_id": pl.String, "ts": pl.Datetime("us", "UTC"), "event_type": pl.String,
                 "category": pl.String, "brand": pl.String, "price": pl.Float64,
                 "quantity": pl.Int64, "channel": pl.String, "campaign_id": pl.String}


def batch_of(*events: Event, users: pl.DataFrame | None = None) -> BatchFeatures:
    rows = [{name: getattr(e, name) for name in EVENT_COLUMNS} for e in events]
    frame = pl.DataFrame(rows, schema=EVENT_COLUMNS).with_columns(
        event_id=pl.lit(None, pl.String), item_id=pl.lit(None, pl.String))
    users = users if users is not None else pl.DataFrame(
        {"user_id": ["u1"], "timezone": ["Europe/Paris"], "signup_ts": [None],
         "country": ["FR"], "consent_email": [True]},
        schema_overrides={"signup_ts": pl.Datetime("us", "UTC")})
    items = pl.DataFrame({"item_id": ["i1", "i2", "i3"], "category": ["shoes"] * 3,
                          "price": [40.0, 80.0, 120.0]})
    return compute_features(frame, users, items, T)


def at(days: float, kind: EventType, **fields: object) -> Event:
    return Event("u1", T - timedelta(days=days), kind, **fields)  # type: ignore[arg-type]


def state_of(batch: BatchFeatures) -> UserState:
    state = batch.state("u1")
    assert state is not None
    return state


def test_a_user_who_bought_only_shoes_has_shoes_first() -> None:
    state = state_of(batch_of(
        at(20, EventType.VIEW, category="books"), at(19, EventType.VIEW, category="books"),
        at(3, EventType.VIEW, category="shoes"),
        at(3, EventType.PURCHASE, category="shoes", price=120.0, quantity=1)))
    assert [key for key, _ in state.values("category_affinity", T)][0] == "shoes"
    assert state.values("price_affinity", T)[0][0] == "2"  # the dearest of the shoes
    assert state.purchases.amount == 120.0 and state.profile.consent == {Channel.EMAIL}


def test_a_user_not_seen_for_months_is_dormant() -> None:
    state = state_of(batch_of(at(200, EventType.VIEW, category="shoes"),
                              at(90, EventType.PURCHASE, category="shoes", price=40.0),
                              at(80, EventType.VIEW, category="shoes")))
    assert state.stage(T) is LifecycleStage.DORMANT
    assert state.stage(T + timedelta(days=60)) is LifecycleStage.CHURNED


def test_an_unbought_cart_is_abandoned_after_an_hour_and_a_purchase_clears_it() -> None:
    cart = [at(0.5, EventType.VIEW, category="shoes"),
            at(0.5, EventType.ADD_TO_CART, category="shoes", price=80.0, quantity=2),
            at(0.4, EventType.CHECKOUT, category="shoes")]
    session = state_of(batch_of(*cart)).session
    assert session.open_cart_value == 160.0 and session.recent_categories == ("shoes",)
    assert session.cart_abandoned_at(T) == T - timedelta(days=0.5)
    assert session.checkout_abandoned_at(T) == T - timedelta(days=0.4)
    assert session.cart_abandoned_at(T - timedelta(days=0.5) + timedelta(minutes=30)) is None
    bought = state_of(batch_of(*cart, at(0.3, EventType.PURCHASE, category="shoes",
                                         price=80.0, quantity=2))).session
    assert bought.open_cart_value == 0 and bought.checkout_abandoned_at(T) is None


def _live_and_batch(*events: Event) -> tuple[SessionContext, SessionContext]:
    return reduce(SessionContext.apply, events, SessionContext()), state_of(
        batch_of(*events)).session


def test_the_carts_lines_follow_what_is_added_and_removed() -> None:
    def cart(days: float, kind: EventType, category: str, quantity: int = 1) -> Event:
        return at(days, kind, category=category, price=10.0, quantity=quantity)
    added = [cart(0.9, EventType.ADD_TO_CART, c) for c in ("shoes", "books", "toys", "bags")]
    live, batch = _live_and_batch(*added)
    assert live == batch and live.cart_lines == (("bags", 1), ("toys", 1), ("books", 1))
    changed = [*added, cart(0.8, EventType.ADD_TO_CART, "books", quantity=2),
               cart(0.7, EventType.REMOVE_FROM_CART, "bags")]
    live, batch = _live_and_batch(*changed)
    assert live == batch and live.cart_lines == (("books", 3), ("toys", 1))  # shoes pushed out
    assert live.cart_categories == ("books", "toys") and live.cart_partial
    assert live.cart_categories_known == ()  # shoes is still in the cart
    assert live.recent_categories == ("books", "bags", "toys")  # browsing keeps removed ones
    live, batch = _live_and_batch(*changed, cart(0.6, EventType.REMOVE_FROM_CART, "books", 2))
    assert live == batch and live.cart_lines == (("books", 1), ("toys", 1))  # one book left
    emptied = [*added, *(cart(0.6, EventType.REMOVE_FROM_CART, c)
                         for c in ("books", "toys", "bags", "shoes"))]
    live, batch = _live_and_batch(*emptied)
    assert live == batch and live.cart_lines == () and live.open_cart_value == 0
    assert not live.cart_partial  # the last removal left it worth nothing: emptied
    live, batch = _live_and_batch(*emptied, cart(0.5, EventType.ADD_TO_CART, "toys"),
                                  at(0.4, EventType.PURCHASE, category="toys", price=10.0),
                                  cart(0.3, EventType.ADD_TO_CART, "pets"))
    assert live == batch and live.cart_lines == (("pets", 1),)
    assert live.cart_categories_known == ("pets",)
    unpriced = [at(0.2, EventType.ADD_TO_CART, category="tea", quantity=2),
                at(0.1, EventType.REMOVE_FROM_CART, category="tea")]
    live, batch = _live_and_batch(*unpriced)
    assert live == batch and live.cart_lines == (("tea", 1),)  # no price: still one left


def test_a_regular_buyer_becomes_due_near_their_cycle() -> None:
    buys = [at(days, EventType.PURCHASE, category="shoes", price=40.0) for days in (70, 50, 30)]
    state = state_of(batch_of(*buys))
    [(category, due)] = state.due_categories({}, T)
    assert category == "shoes" and due == pytest.approx(30 / 20)
    [(_, shrunk)] = state.due_categories({"shoes": 60.0}, T)
    assert shrunk == pytest.approx(30 / ((2 * 20 + 2 * 60) / 4))


def test_sends_count_per_channel_over_rolling_days() -> None:
    sends = [at(d, EventType.MESSAGE_SENT, channel=c)
             for d, c in ((0.1, "push"), (1.1, "push"), (2.1, "email"), (9.1, "push"))]
    state = state_of(batch_of(*sends))
    assert state.sent_within(T, 7, "push") == 2 and state.sent_within(T, 7) == 3
    assert state.sent_within(T, 30) == 4 and state.last_contact == T - timedelta(days=0.1)


def test_a_send_arriving_late_leaves_the_last_contact_at_the_latest_send() -> None:
    latest, older = (at(hours / 24, EventType.MESSAGE_SENT, channel="email") for hours in (1, 5))
    batch = batch_of(latest)
    live = state_of(batch).apply(older, batch.bands)
    assert live.last_contact == T - timedelta(hours=1)
    assert live.last_contact == state_of(batch_of(latest, older)).last_contact


def test_hourly_opens_are_in_the_users_local_hour() -> None:
    opened = at(1, EventType.MESSAGE_OPEN, channel="email")  # 00:00 UTC = 02:00 in Paris (CEST)
    state = state_of(batch_of(opened))
    assert list(state.counts["hourly_opens"]) == ["email:2"]


def _close(actual: UserState, expected: UserState, now: datetime) -> None:
    assert actual.activity == expected.activity
    assert actual.session == expected.session
    assert actual.contacts == expected.contacts and actual.last_contact == expected.last_contact
    for mine, theirs in [(actual.purchases, expected.purchases),
                         *((actual.category_purchases.get(c), t)
                           for c, t in expected.category_purchases.items())]:
        assert mine is not None
        assert (mine.lines, mine.occasions, mine.returns, mine.first, mine.last) == (
            theirs.lines, theirs.occasions, theirs.returns, theirs.first, theirs.last)
        assert mine.amount == pytest.approx(theirs.amount, abs=1e-6)
    assert actual.category_purchases.keys() == expected.category_purchases.keys()
    for name in expected.counts.keys() | actual.counts.keys():
        values = dict(actual.values(name, now))
        assert values.keys() == dict(expected.values(name, now)).keys()
        for key, value in expected.values(name, now):
            assert values[key] == pytest.approx(value, rel=1e-9, abs=1e-9)


def test_batch_then_live_events_equal_batch_over_all_events(split_world: SplitWorld) -> None:
    states: dict[str, UserState] = {}
    late = split_world.late_events
    for event in late:
        if event.user_id not in states:
            states[event.user_id] = (split_world.early.state(event.user_id)
                                     or UserState(event.user_id, split_world.cut))
        states[event.user_id] = states[event.user_id].apply(event, split_world.early.bands)
    assert len(states) > 100 and len(late) > 1000
    now = split_world.full.anchor
    for user_id in sorted(states)[:120]:
        expected = split_world.full.state(user_id)
        assert expected is not None
        _close(states[user_id], expected, now)


def test_engagement_rates_lean_on_the_population_until_a_user_has_history() -> None:
    population = {"open": {"email": 0.2}, "click": {"email": 0.05},
                  "conversion": {"email": 0.01}}
    newcomer = UserState("u1", T)
    assert newcomer.engagement(population, T)["email"]["open"] == pytest.approx(0.2)
    sends = [at(1 + d, EventType.MESSAGE_SENT, channel="email") for d in range(40)]
    opens = [at(1 + d, EventType.MESSAGE_OPEN, channel="email") for d in range(0, 40, 2)]
    rates = state_of(batch_of(*sends, *opens)).engagement(population, T)["email"]
    assert 0.4 < rates["open"] < 0.5 and rates["click"] < 0.05


def test_opens_without_their_sends_make_no_rate_above_one() -> None:
    """Sent by another system, or sent long enough ago to have decayed away."""
    population = {"open": {"push": 0.9}, "click": {"push": 0.1}, "conversion": {"push": 0.0}}
    opens = [at(1 + d / 24, EventType.MESSAGE_OPEN, channel="push") for d in range(10)]
    batch = batch_of(*opens)
    assert state_of(batch).engagement(population, T)["push"]["open"] == 1.0
    channels = ChannelModel({"push": 0.9}, {})
    assert channels.rates_for(state_of(batch), T) == {"push": 1.0}
    assert channels.rates(batch)["open_rate"].to_list() == [1.0]


def test_engagement_rates_agree_in_batch_and_per_user(split_world: SplitWorld) -> None:
    batch = split_world.full
    rates = DEFAULT_ENGAGEMENT.batch(batch.counts, batch.engagement)
    assert rates.height > 100
    for user_id, channel, opened, clicked, converted in rates.head(50).iter_rows():
        state = batch.state(user_id)
        assert state is not None
        mine = state.engagement(batch.engagement, batch.anchor)[channel]
        assert (mine["open"], mine["click"], mine["conversion"]) == pytest.approx(
            (opened, clicked, converted), rel=1e-9)


def test_returns_outweighing_attributed_orders_make_no_conversion_rate_below_the_prior(
) -> None:
    """Batch (what the offer model trains on) and per user (what it is served) agree: a
    negative total reads as 0 in both; so does the population's rate."""
    email = {"channel": "email", "campaign_id": "c1", "category": "tea", "price": 10.0}
    events = [at(5, EventType.MESSAGE_SENT, channel="email"),
              at(4, EventType.PURCHASE, **email),
              at(1, EventType.PURCHASE, quantity=-1, **email),
              at(1, EventType.PURCHASE, quantity=-1, **email)]
    batch = batch_of(*events)
    assert batch.engagement["conversion"]["email"] == 0.0
    rates = DEFAULT_ENGAGEMENT.batch(batch.counts, batch.engagement)
    served = state_of(batch).engagement(batch.engagement, batch.anchor)["email"]
    assert rates["conversion"].to_list() == [served["conversion"]] == [0.0]


@pytest.mark.parametrize("lately", [
    [at(7 * week, EventType.MESSAGE_SENT, channel="email") for week in range(20)],
    [at(2, EventType.APP_UNINSTALL)]])
def test_messages_we_send_and_an_uninstall_are_no_visit(lately: list[Event]) -> None:
    """A prospect seen once 200 days ago stays churned, in batch and live alike, however
    often we message them since, or if they remove the app."""
    visit = at(200, EventType.VIEW, category="tea")
    batch = state_of(batch_of(visit, *lately))
    before = batch_of(visit)
    live = reduce(lambda state, event: state.apply(event, before.bands),
                  sorted(lately, key=lambda event: event.ts), state_of(before))
    for state in (batch, live):
        assert state.activity.last_seen == visit.ts
        assert state.stage(T) is LifecycleStage.CHURNED


def test_an_item_added_without_its_category_leaves_the_carts_categories_unknown() -> None:
    """Beside coffee, an item of unknown category (skincare, maybe): the cart's categories
    are not all known, so the cart rule keeps offers for any category (the lines alone
    said coffee, and the rule removed a beauty voucher for a cart holding skincare)."""
    added = [at(0.5, EventType.ADD_TO_CART, item_id="i145", price=60.0),
             at(0.4, EventType.ADD_TO_CART, category="coffee", price=6.68)]
    live, batch = _live_and_batch(*added)
    assert live == batch and live.cart_lines == (("coffee", 1),)
    assert live.cart_partial and live.cart_categories_known == ()


def test_interest_decayed_to_nothing_is_left_out_of_the_batch() -> None:
    """Under MIN_TOTAL a total counts as none when served: training reads none either."""
    batch = batch_of(at(6000, EventType.PURCHASE, category="tea", brand="zeta", price=3.0),
                     at(10, EventType.VIEW, category="coffee", brand="acme"))
    assert batch.counts["category_affinity"]["key"].to_list() == ["coffee"]
    assert batch.counts["brand_affinity"]["key"].to_list() == ["acme"]


def test_each_kind_of_event_weighs_on_interest_as_documented() -> None:
    """View 1, search 0.5, wishlist 2, cart 3, checkout 4, purchase 6 (features.md)."""
    kinds = {"a": EventType.VIEW, "b": EventType.SEARCH, "c": EventType.WISHLIST,
             "d": EventType.ADD_TO_CART, "e": EventType.CHECKOUT, "f": EventType.PURCHASE}
    batch = batch_of(*(at(0, kind, category=category, price=1.0)
                       for category, kind in kinds.items()))
    totals = dict(batch.counts["category_affinity"].select("key", "total").iter_rows())
    assert totals == {"a": 1.0, "b": 0.5, "c": 2.0, "d": 3.0, "e": 4.0, "f": 6.0}
