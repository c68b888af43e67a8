from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from features.contract.schema import EVENTS, ITEMS, USERS, EventType
from features.contract.tables import load_table
from features.counts import (
    CATEGORY_AFFINITY,
    CHANNEL_CONVERSIONS,
    CHANNEL_OPENS,
    DECAYED_COUNTS,
    DecayedCount,
)
from features.decay import HalfLife
from features.event import Event
from features.local_time import hour_of_week, with_hour_of_week
from features.price_bands import PriceBands
from training.synthetic.world import generate_world

T = datetime(2026, 3, 1, tzinfo=UTC)


def _log(*rows: tuple[str, int, EventType, str, int | None]) -> pl.DataFrame:
    """Events as (user, days before T, type, category, quantity)."""
    return pl.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "ts": [T - timedelta(days=r[1]) for r in rows],
            "event_type": [r[2].value for r in rows],
            "category": [r[3] for r in rows],
            "quantity": [r[4] for r in rows],
        },
        schema_overrides={"ts": pl.Datetime("us", "UTC"), "quantity": pl.Int64},
    )


def _values(frame: pl.DataFrame, count: DecayedCount) -> dict[tuple[str, str], float]:
    return {(user, key): value for user, key, total in frame.iter_rows()
            for value in count.values({key: total}, T, T).values()}


def test_a_user_who_bought_only_shoes_likes_shoes_most() -> None:
    log = _log(("u1", 40, EventType.VIEW, "books", None),
               ("u1", 3, EventType.VIEW, "shoes", None),
               ("u1", 3, EventType.PURCHASE, "shoes", 1),
               ("u1", 1, EventType.VIEW, "books", None))
    values = _values(CATEGORY_AFFINITY.batch(log, T), CATEGORY_AFFINITY)
    assert values[("u1", "shoes")] > values[("u1", "books")]


def test_weights_halve_every_half_life() -> None:
    count = DecayedCount("x", ("category",), HalfLife(days=30))
    values = _values(count.batch(_log(("u1", 30, EventType.VIEW, "tea", None)), T), count)
    assert values[("u1", "tea")] == pytest.approx(0.5)


def test_a_later_return_never_leaves_a_negative_affinity() -> None:
    log = _log(("u1", 20, EventType.PURCHASE, "phones", 1),
               ("u1", 5, EventType.PURCHASE, "phones", -1))
    assert _values(CATEGORY_AFFINITY.batch(log, T), CATEGORY_AFFINITY)[("u1", "phones")] == 0.0


def test_a_return_takes_back_its_purchase() -> None:
    log = _log(("u1", 5, EventType.PURCHASE, "phones", 1),
               ("u1", 5, EventType.PURCHASE, "phones", -1))
    assert _values(CATEGORY_AFFINITY.batch(log, T), CATEGORY_AFFINITY)[
        ("u1", "phones")] == pytest.approx(0.0, abs=1e-12)


def test_only_attributed_purchases_are_conversions() -> None:
    organic = Event("u1", T, EventType.PURCHASE, channel="web", quantity=1)
    attributed = Event("u1", T, EventType.PURCHASE, channel="email", campaign_id="nl-w01")
    assert CHANNEL_CONVERSIONS.live(organic, T) is None
    assert CHANNEL_CONVERSIONS.live(attributed, T) == ("email", 1.0)
    assert CHANNEL_OPENS.live(Event("u1", T, EventType.MESSAGE_OPEN, channel="push"),
                              T) == ("push", 1.0)


def test_local_hours_of_week_agree_in_batch_and_live() -> None:
    moments = [datetime(2026, 3, 29, 0, 30, tzinfo=UTC),  # Sunday in UTC, DST day in Paris
               datetime(2026, 3, 30, 23, 0, tzinfo=UTC)]
    events = pl.DataFrame({"user_id": ["paris", "kolkata"], "ts": moments},
                          schema_overrides={"ts": pl.Datetime("us", "UTC")})
    zones = pl.DataFrame({"user_id": ["paris", "kolkata"],
                          "timezone": ["Europe/Paris", "Asia/Kolkata"]})
    batch = with_hour_of_week(events, zones)["local_hour_of_week"].to_list()
    assert batch == [hour_of_week(moments[0], "Europe/Paris"),
                     hour_of_week(moments[1], "Asia/Kolkata")] == [6 * 24 + 1, 1 * 24 + 4]
    assert hour_of_week(moments[0], None) == 6 * 24


def test_events_without_a_key_or_weight_add_nothing() -> None:
    event = Event("u1", T, EventType.MESSAGE_OPEN, category="tea")
    assert CATEGORY_AFFINITY.live(event, T) is None
    assert CATEGORY_AFFINITY.live(Event("u1", T, EventType.VIEW), T) is None


World = tuple[pl.DataFrame, dict[str, str], PriceBands]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """A small world's events with local hours and price bands, each user's zone, the bands."""
    directory = tmp_path_factory.mktemp("world")
    generate_world(directory, users=400, days=20, seed=11)
    zones = load_table(directory, USERS).frame.select("user_id", "timezone")
    bands = PriceBands.from_prices(load_table(directory, ITEMS).frame)
    events = bands.with_band(with_hour_of_week(load_table(directory, EVENTS).frame, zones))
    return events, dict(zones.iter_rows()), bands


@pytest.mark.parametrize("count", DECAYED_COUNTS, ids=lambda c: c.name)
def test_batch_then_live_equals_batch_over_everything(world: World, count: DecayedCount) -> None:
    events, zones, bands = world
    first = events["ts"].min()
    assert isinstance(first, datetime)
    cut = first + timedelta(days=12)
    before, after = events.filter(pl.col("ts") < cut), events.filter(pl.col("ts") >= cut)

    totals: dict[tuple[str, str], float] = defaultdict(float)
    for user, key, total in count.batch(before, cut).iter_rows():
        totals[(user, key)] += total
    for row in after.sample(fraction=1.0, shuffle=True, seed=3).iter_rows(named=True):
        event = Event.from_row({**row, "local_hour_of_week": None, "price_band": None})
        hour = hour_of_week(event.ts, zones.get(event.user_id))
        band = bands.band(event.category, event.price)
        update = count.live(replace(event, local_hour_of_week=hour, price_band=band), cut)
        if update is not None:
            totals[(event.user_id, update[0])] += update[1]

    expected = {(u, k): t for u, k, t in count.batch(events, cut).iter_rows()}
    assert expected.keys() == totals.keys()
    for key, total in expected.items():
        assert totals[key] == pytest.approx(total, rel=1e-9, abs=1e-9)
