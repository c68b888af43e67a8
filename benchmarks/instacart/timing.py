"""When the last order came: the days since the previous one, and its local hour.

Days to the next order, from nbo's repeat cycles (features/cycles.py): nbo keeps cycles
per user x category, so here `RepeatCycle.interval_days` runs on the user's own purchase
tally (buying occasions: lines more than 12 h apart) with the median cycle of all repeat
buyers as the prior it shrinks toward (`category_cycles` over the user tallies, as if all
orders were one category). The gap is measured from the user's last purchase before the
cut and never reads the cut itself (it is the day of the answer). Baselines: the user's
mean interval between their earlier orders, and the median interval of all earlier
orders.

The hour, as a proxy for send time: nbo's send-time model (models/send_time.py) with no
message opens in the data is its prior, the user's decayed shopping activity by local
hour as the store keeps it (3 busiest hours), smoothed; its engagement hour is compared
with the global best hour (most orders before the earliest cut) and with the user's own
most frequent order hour, hit when within 1 hour of the last order's local hour.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl

from benchmarks.instacart.split import Cut
from features.cycles import DEFAULT_CYCLE
from features.local_time import HOUR_COLUMN, with_hour_of_week
from features.pipeline import PURCHASE_PREFIX
from features.purchases import PurchaseTally
from models.send_time import HOURS, SendTimeModel
from training.send_time import within_an_hour
from training.send_time_evaluation import predicted_hours

DAY_SECONDS = 86_400.0
ALL_ORDERS = "all orders"  # the one "category" of the user-level cycles
CHANNEL = "web"  # any channel: with no opens, every channel's curve is the same prior


def orders(events: pl.DataFrame) -> pl.DataFrame:
    """(user_id, order_id, ts): one row per order, at its first line."""
    return (events.group_by("user_id", "order_id").agg(pl.col("ts").min())
            .sort("user_id", "ts"))


def _tally(row: dict[str, object], prefix: str = "") -> PurchaseTally:
    return PurchaseTally.from_row({name: row[prefix + name]
                                   for name in PurchaseTally.__dataclass_fields__})


def _days(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds() / DAY_SECONDS


def timing_rows(cut: Cut) -> pl.DataFrame:
    """Per user of the cut: the actual gap to the last order and each prediction (days)."""
    batch = cut.batch
    tallies = batch.users.select(
        "user_id", category=pl.lit(ALL_ORDERS), occasions=PURCHASE_PREFIX + "occasions",
        first=PURCHASE_PREFIX + "first", last=PURCHASE_PREFIX + "last")
    population = DEFAULT_CYCLE.category_cycles(tallies).get(ALL_ORDERS)
    next_order = orders(cut.after).group_by("user_id").agg(next=pl.col("ts").min())
    earlier = orders(cut.before).group_by("user_id").agg(
        mean_gap=pl.col("ts").sort().diff().dt.total_seconds().mean() / DAY_SECONDS)
    rows = []
    users = batch.users.filter(pl.col("user_id").is_in(cut.users)).join(
        next_order, on="user_id").join(earlier, on="user_id", how="left")
    for row in users.iter_rows(named=True):
        tally = _tally(row, PURCHASE_PREFIX)
        if tally.last is None:
            continue
        rows.append({
            "user_id": row["user_id"],
            "actual": _days(row["next"], tally.last),
            "user_cycle": DEFAULT_CYCLE.interval_days(tally, population),
            "mean_interval": row["mean_gap"],
        })
    return pl.DataFrame(rows, schema={"user_id": pl.String, "actual": pl.Float64,
                                      "user_cycle": pl.Float64,
                                      "mean_interval": pl.Float64})


def timing_metrics(rows: pl.DataFrame, global_median: float) -> dict[str, float]:
    """Mean and median absolute error (days) of each prediction, on the users where every
    prediction exists."""
    scored = rows.with_columns(global_median=pl.lit(global_median)).drop_nulls()
    actual = scored["actual"].to_numpy()
    metrics: dict[str, float] = {"users": float(scored.height),
                                 "actual_mean_days": float(actual.mean()),
                                 "global_median_days": global_median}
    for name in ("user_cycle", "mean_interval", "global_median"):
        error = np.abs(scored[name].to_numpy() - actual)
        metrics[f"{name}_mae_days"] = float(error.mean())
        metrics[f"{name}_median_ae_days"] = float(np.median(error))
    return metrics


def order_hours(events: pl.DataFrame, users: pl.DataFrame) -> pl.DataFrame:
    """(user_id, order_id, ts, local_hour) per order."""
    return with_hour_of_week(orders(events), users.select("user_id", "timezone"))


def best_hour(hours: pl.DataFrame) -> int:
    """The local hour with most orders (the lower hour on a tie)."""
    counts = np.bincount(hours[HOUR_COLUMN].to_numpy(), minlength=HOURS)
    return int(np.argmax(counts))


def hour_rows(cut: Cut, users: pl.DataFrame) -> pl.DataFrame:
    """Per user of the cut: the last order's local hour, nbo's hour and the user's most
    frequent earlier order hour."""
    model = SendTimeModel.fit(cut.batch, delay_hours=0)
    pairs = pl.DataFrame({"user_id": cut.users, "channel": [CHANNEL] * len(cut.users)})
    predicted = predicted_hours(model, cut.batch, pairs).select(
        "user_id", model="engagement_hour")
    actual = (order_hours(cut.after, users).sort("ts").group_by("user_id", maintain_order=True)
              .agg(actual=pl.col(HOUR_COLUMN).first()))
    own = (order_hours(cut.before, users).group_by("user_id", HOUR_COLUMN).len()
           .sort("user_id", "len", HOUR_COLUMN, descending=[False, True, False])
           .group_by("user_id", maintain_order=True).agg(own=pl.col(HOUR_COLUMN).first()))
    return actual.join(predicted, on="user_id").join(own, on="user_id").select(
        "user_id", *(pl.col(name).cast(pl.Int64) for name in ("actual", "model", "own")))


def hour_metrics(rows: pl.DataFrame, global_hour: int) -> dict[str, float]:
    actual = rows["actual"].to_numpy()
    return {
        "users": float(rows.height),
        "global_best_hour": float(global_hour),
        "model_hit_rate_1h": float(within_an_hour(rows["model"], actual).mean()),
        "global_hit_rate_1h": float(within_an_hour(np.full(len(actual), global_hour),
                                                   actual).mean()),
        "own_most_frequent_hit_rate_1h": float(within_an_hour(rows["own"], actual).mean()),
        "model_exact_rate": float((rows["model"].to_numpy() == actual).mean()),
        "global_exact_rate": float((actual == global_hour).mean()),
    }
