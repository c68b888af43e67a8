from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from features.contract.schema import EVENTS, EventType
from features.contract.tables import load_table
from features.event import Event
from features.price_bands import PriceBands
from features.purchases import (
    CATEGORY_PURCHASES,
    PURCHASE_HISTORIES,
    PurchaseHistory,
    PurchaseTally,
)
from training.synthetic.world import generate_world

T = datetime(2026, 3, 1, tzinfo=UTC)


def _buy(days: float, category: str = "coffee", price: float = 10.0,
         quantity: int | None = 1) -> Event:
    return Event("u1", T + timedelta(days=days), EventType.PURCHASE, category=category,
                 price=price, quantity=quantity)


def _tally(*events: Event) -> PurchaseTally:
    tally = PurchaseTally()
    for event in events:
        tally = tally.apply(event)
    return tally


def test_lines_of_one_basket_are_one_occasion() -> None:
    tally = _tally(_buy(0), _buy(0.01, quantity=2), _buy(14), _buy(28))
    assert (tally.lines, tally.occasions) == (4, 3)
    assert tally.amount == pytest.approx(50.0)
    assert tally.mean_interval_days() == pytest.approx(14.0)


def test_lines_exactly_the_gap_apart_are_one_occasion_live_and_in_batch() -> None:
    """A new occasion starts more than OCCASION_GAP (12 hours) after the previous line."""
    events = [_buy(0), _buy(0.5), _buy(1.0 + 1e-6)]
    frame = pl.DataFrame([e.__dict__ for e in events]).with_columns(
        pl.col("event_type").cast(pl.String), pl.col("ts").dt.cast_time_unit("us"))
    batch = PurchaseTally.from_row(CATEGORY_PURCHASES.batch(frame).row(0, named=True))
    assert _tally(*events).occasions == batch.occasions == 2


def test_a_line_arriving_late_moves_the_first_purchase_back() -> None:
    tally = _tally(_buy(5), _buy(1))
    assert (tally.first, tally.last) == (T + timedelta(days=1), T + timedelta(days=5))


def test_returns_are_counted_and_refunded() -> None:
    tally = _tally(_buy(0, price=80.0), _buy(5, price=80.0, quantity=-1))
    assert (tally.lines, tally.returns, tally.amount) == (1, 1, 0.0)
    assert tally.last == T
    assert tally.mean_interval_days() is None


def test_price_lean_counts_high_band_lines_against_low_band_ones() -> None:
    def priced(band: int | None, days: float, quantity: int = 1) -> Event:
        return replace(_buy(days, quantity=quantity), price_band=band)

    tally = _tally(priced(2, 0), priced(2, 3), priced(0, 6), priced(1, 9), priced(None, 12),
                   priced(0, 15, quantity=-1))
    assert (tally.lines, tally.price_lean) == (5, 1)  # returns and unknown prices count 0


def test_batch_reads_the_same_tally_as_live_updates() -> None:
    events = [_buy(0), _buy(0.01, quantity=2), _buy(14), _buy(20, quantity=-1), _buy(28)]
    frame = pl.DataFrame([e.__dict__ for e in events]).with_columns(
        pl.col("event_type").cast(pl.String), pl.col("ts").dt.cast_time_unit("us"))
    row = CATEGORY_PURCHASES.batch(frame).row(0, named=True)
    assert PurchaseTally.from_row(row) == _tally(*events)


@pytest.mark.parametrize("history", PURCHASE_HISTORIES, ids=lambda h: h.name)
def test_batch_then_live_equals_batch_over_everything(tmp_path: Path,
                                                     history: PurchaseHistory) -> None:
    generate_world(tmp_path, users=300, days=30, seed=4)
    events = load_table(tmp_path, EVENTS).frame.sort("ts", maintain_order=True)
    events = PriceBands.from_prices(events).with_band(events)
    cut = datetime(2026, 1, 20, tzinfo=UTC)
    keys = ["user_id"] + ([history.column] if history.column else [])

    def tallies(frame: pl.DataFrame) -> dict[tuple[str, ...], PurchaseTally]:
        return {tuple(row[k] for k in keys): PurchaseTally.from_row(row)
                for row in history.batch(frame).iter_rows(named=True)}

    state: dict[tuple[str, ...], PurchaseTally] = defaultdict(PurchaseTally)
    state.update(tallies(events.filter(pl.col("ts") < cut)))
    for row in events.filter(pl.col("ts") >= cut).iter_rows(named=True):
        event = Event.from_row(row)
        if history.live(event):
            key: tuple[str, ...] = (event.user_id,)
            if history.column:
                key = (event.user_id, str(history.key(event)))
            state[key] = state[key].apply(event)
    expected = tallies(events)
    assert state.keys() == expected.keys()
    for key, tally in expected.items():
        got = state[key]
        assert got.amount == pytest.approx(tally.amount)
        assert (got.lines, got.occasions, got.returns, got.first, got.last,
                got.price_lean) == (tally.lines, tally.occasions, tally.returns, tally.first,
                                    tally.last, tally.price_lean)
    assert any(tally.price_lean for tally in expected.values())
