from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from features.activity import ActivitySpan
from features.contract.schema import EVENTS, EventType, LifecycleStage
from features.contract.tables import load_table
from features.event import Event
from features.lifecycle import DEFAULT_RULES
from features.purchases import USER_PURCHASES, PurchaseTally
from training.synthetic.world import generate_world

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def _history(*purchase_days_ago: float, seen_days_ago: tuple[float, ...] = ()) -> tuple[
        ActivitySpan, PurchaseTally]:
    activity, purchases = ActivitySpan(), PurchaseTally()
    for days in sorted(purchase_days_ago, reverse=True):
        event = Event("u", NOW - timedelta(days=days), EventType.PURCHASE, quantity=1, price=5.0)
        activity, purchases = activity.apply(event), purchases.apply(event)
    for days in seen_days_ago:
        activity = activity.apply(Event("u", NOW - timedelta(days=days), EventType.VIEW))
    return activity, purchases


@pytest.mark.parametrize(
    ("purchases", "seen", "stage"),
    [
        ((), (3,), LifecycleStage.NEW),
        ((2,), (10,), LifecycleStage.NEW),
        ((200, 100, 50, 10), (), LifecycleStage.LOYAL),
        ((90, 10), (), LifecycleStage.ACTIVE),
        ((120, 45), (), LifecycleStage.AT_RISK),
        ((300, 95), (), LifecycleStage.DORMANT),
        ((400, 200), (1,), LifecycleStage.CHURNED),  # browsing does not revive a buyer
        ((), (100,), LifecycleStage.DORMANT),
    ],
)
def test_stages_follow_the_documented_rules(purchases: tuple[float, ...],
                                            seen: tuple[float, ...],
                                            stage: LifecycleStage) -> None:
    activity, tally = _history(*purchases, seen_days_ago=seen)
    assert DEFAULT_RULES.stage(activity, tally, NOW) is stage


def test_a_slow_but_regular_buyer_is_not_at_risk_before_being_overdue() -> None:
    activity, tally = _history(205, 155, 105, 55)  # every 50 days, last 55 days ago
    assert DEFAULT_RULES.stage(activity, tally, NOW) is LifecycleStage.LOYAL
    activity, tally = _history(121, 91, 61, 31)  # every 30 days: at risk after 60, not before
    assert DEFAULT_RULES.stage(activity, tally, NOW) is LifecycleStage.LOYAL
    activity, tally = _history(151, 121, 91, 61 + 1 / 24)
    assert DEFAULT_RULES.stage(activity, tally, NOW) is LifecycleStage.AT_RISK
    activity, tally = _history(170, 55)  # one interval is no cycle yet
    assert DEFAULT_RULES.stage(activity, tally, NOW) is LifecycleStage.AT_RISK


def test_signup_date_makes_a_user_new_before_any_event() -> None:
    assert DEFAULT_RULES.stage(ActivitySpan(), PurchaseTally(), NOW,
                               signup=NOW - timedelta(days=2)) is LifecycleStage.NEW


def test_rule_stages_agree_with_the_synthetic_truth(tmp_path_factory: pytest.TempPathFactory
                                                    ) -> None:
    world = tmp_path_factory.mktemp("world")
    generate_world(world, users=2_000, days=90, seed=2)
    events = load_table(world, EVENTS).frame
    end = datetime(2026, 4, 5, tzinfo=UTC)  # the default window's end
    spans = {row["user_id"]: ActivitySpan(row["first_seen"], row["last_seen"], row["events"])
             for row in ActivitySpan.batch(events).iter_rows(named=True)}
    tallies = {row["user_id"]: PurchaseTally.from_row(row)
               for row in USER_PURCHASES.batch(events).iter_rows(named=True)}
    truth = pl.read_parquet(world / "ground_truth" / "users")
    slipping = {LifecycleStage.AT_RISK, LifecycleStage.DORMANT, LifecycleStage.CHURNED}
    share: dict[str, list[bool]] = {}
    for user, state in truth.select("user_id", "state_at_end").iter_rows():
        stage = DEFAULT_RULES.stage(spans.get(user, ActivitySpan()),
                                    tallies.get(user, PurchaseTally()), end)
        share.setdefault(state, []).append(stage in slipping)
    churned = sum(share["churned"]) / len(share["churned"])
    active = sum(share["active"]) / len(share["active"])
    assert churned > 0.35 and active < 0.1


def test_a_regular_buyers_shifted_window_ends_exactly_where_it_says() -> None:
    """3 occasions over 34 days 1 hour: a mean interval of 17 days 30 minutes moves the
    at-risk window's end to 60 + 2 x 17d 30m - 30 = 64 days 1 hour. In float days its
    end fell a hair short of the exact instant, which read as dormant."""
    first = NOW - timedelta(days=34, hours=1)
    tally = PurchaseTally()
    for when in (first, first + timedelta(days=17, minutes=30), NOW):
        tally = tally.apply(Event("u", when, EventType.PURCHASE, quantity=1, price=5.0))
    activity = ActivitySpan(first, NOW, 3)
    end = NOW + timedelta(days=64, hours=1)
    assert DEFAULT_RULES.stage(activity, tally, end) is LifecycleStage.AT_RISK
    assert DEFAULT_RULES.stage(activity, tally, end + timedelta(microseconds=1)) is (
        LifecycleStage.DORMANT)


@pytest.mark.parametrize(("purchases", "seen", "at_the_edge", "past_it"), [
    ((), (30,), LifecycleStage.NEW, LifecycleStage.AT_RISK),  # new_days, active_days: 30
    ((80, 30), (), LifecycleStage.ACTIVE, LifecycleStage.AT_RISK),  # active_days: 30
    ((180, 60), (), LifecycleStage.AT_RISK, LifecycleStage.DORMANT),  # at_risk_days: 60
    ((300, 120), (), LifecycleStage.DORMANT, LifecycleStage.CHURNED),  # dormant_days: 120
])
def test_each_stage_holds_to_the_end_of_its_window(
        purchases: tuple[float, ...], seen: tuple[float, ...], at_the_edge: LifecycleStage,
        past_it: LifecycleStage) -> None:
    """A window of N days includes its last instant, N days after the event."""
    activity, tally = _history(*purchases, seen_days_ago=seen)
    assert DEFAULT_RULES.stage(activity, tally, NOW) is at_the_edge
    assert DEFAULT_RULES.stage(activity, tally, NOW + timedelta(microseconds=1)) is past_it
