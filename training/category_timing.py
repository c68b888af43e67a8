"""How well category timing finds the hour a user shops a category, on the evaluation window.

The model is fitted on the purchase lines of the FIT_WINDOW before the evaluation cut,
with their buyers' hours at its start. Every purchase line after the evaluation cut is a
case, hit when a predicted local hour is within 1 hour of the line's. Four predictions,
each from before the cut: the model (the category's hours mixed with the user's activity
by hour, as served), the user's activity alone, the category's own busiest hour, and the
busiest hour of all purchases. With ground truth, the share of the categories with hours
of their own whose fitted busiest hour is within 1 hour of the true one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from features.local_time import HOUR_COLUMN
from models.category_timing import CategoryTiming, activity_rows, purchase_hours
from training.cuts import FeaturesAt
from training.send_time import mean_or_nan, within_an_hour
from training.split import TimeSplit, between

FIT_WINDOW = timedelta(days=42)  # longer windows find rarely bought categories' hours
HISTORY = timedelta(days=7)  # activity to know a user's hours by, at the window's start


def hit_rates(model: CategoryTiming, activity: np.ndarray, categories: list[str],
              actual: np.ndarray) -> dict[str, float]:
    """The four hit rates on purchase lines: their buyers' activity by hour (n x 24), their
    categories and their local hours."""
    own = {category: model.category_hour(category) for category in set(categories)}
    alone = CategoryTiming(model.overall, {}, {}, model.user_strength, model.bandwidth)
    return {
        "hit_rate_1h": mean_or_nan(within_an_hour(model.hours(activity, categories), actual)),
        "user_hit_rate_1h": mean_or_nan(within_an_hour(alone.hours(activity, categories), actual)),
        "category_hit_rate_1h": mean_or_nan(within_an_hour(
            np.array([own[category] for category in categories], dtype=np.int64), actual)),
        "global_hit_rate_1h": mean_or_nan(within_an_hour(
            np.full(len(actual), int(np.argmax(model.overall))), actual)),
        "purchases": float(len(actual)),
    }


def fit_category_timing(features: FeaturesAt, users: pl.DataFrame,
                        stop: datetime) -> CategoryTiming:
    """Fitted on the purchase lines of the FIT_WINDOW up to `stop`, with their buyers'
    activity at its start: as a user's hours are known when the model is used, before the
    purchase (activity taken after it would hold the very line being explained). The
    window starts no sooner than HISTORY into the log."""
    first = features.events["ts"].min()
    assert isinstance(first, datetime)
    start = max(stop - FIT_WINDOW, first + HISTORY)
    lines = purchase_hours(between(features.events, start, stop),
                           users.select("user_id", "timezone"))
    return CategoryTiming.fit(lines, activity_rows(features(start), lines["user_id"]))


def evaluate_category_timing(features: FeaturesAt, users: pl.DataFrame, split: TimeSplit,
                             truth_dir: Path | None = None,
                             ) -> tuple[CategoryTiming, dict[str, float]]:
    """Fitted on the lines of the fit window, scored on those after the evaluation cut."""
    model = fit_category_timing(features, users, split.eval_cut)
    later = purchase_hours(between(features.events, split.eval_cut, split.end),
                           users.select("user_id", "timezone"))
    metrics = hit_rates(model, activity_rows(features(split.eval_cut), later["user_id"]),
                        later["category"].to_list(), later[HOUR_COLUMN].to_numpy())
    truth = truth_dir / "categories.parquet" if truth_dir is not None else None
    if truth is not None and truth.is_file():
        categories_truth = pl.read_parquet(truth)
        timed = (categories_truth.filter(pl.col("shopping_hour").is_not_null())
                 if "shopping_hour" in categories_truth.columns else categories_truth.clear())
        if timed.height:
            fitted = np.array([model.category_hour(c) for c in timed["category"]])
            metrics["oracle_category_hour_hit_rate_1h"] = mean_or_nan(within_an_hour(
                fitted, timed["shopping_hour"].cast(pl.Int64).to_numpy()))
    return model, metrics
