"""The whole evaluation on a converted data set: departments, reorder timing, order hour,
department hours.

The data set is read with the loaders `nbo train` uses (features.pipeline.load_inputs),
features come from `compute_features` at each cut (training.cuts.FeaturesAt), and the
category ranker is fit with `fit_category_ranker` (split.py says on which window).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from benchmarks.instacart.department_hours import line_cases
from benchmarks.instacart.departments import cut_signals, department_metrics
from benchmarks.instacart.split import LastOrderSplit
from benchmarks.instacart.timing import (
    DAY_SECONDS,
    best_hour,
    hour_metrics,
    hour_rows,
    order_hours,
    orders,
    timing_metrics,
    timing_rows,
)
from features.pipeline import load_inputs
from training.affinity.categories import fit_category_ranker, purchased
from training.category_timing import fit_category_timing, hit_rates
from training.cuts import FeaturesAt
from training.split import between, up_to


def evaluate(directory: Path, seed: int = 0, max_users: int | None = None) -> dict[str, Any]:
    """Metrics on every user's last order; with `max_users`, on the data set cut down to
    the first users by id."""
    seconds: dict[str, float] = {}
    began = time.perf_counter()
    events, users, items = load_inputs(directory, ("order_id",))
    if max_users is not None:  # a smaller sample: these users' events only, fit included
        chosen = sorted(users["user_id"].to_list(), key=int)[:max_users]
        events = events.filter(pl.col("user_id").is_in(chosen))
        users = users.filter(pl.col("user_id").is_in(chosen))
    seconds["load"] = time.perf_counter() - began
    features = FeaturesAt(events, users, items, keep=1)
    split = LastOrderSplit.of(events)

    began = time.perf_counter()
    ranker = fit_category_ranker(features, split.fit, seed)
    fit_users = purchased(between(events, split.fit.fit_cut, split.fit.eval_cut))[
        "user_id"].n_unique()
    timing = fit_category_timing(features, users, split.fit.eval_cut)
    seconds["fit"] = time.perf_counter() - began

    began = time.perf_counter()
    signals, relevant, histories, timings, hours = [], [], [], [], []
    activity, departments, line_hours = [], [], []
    for cut in split.walk(features):
        cut_scores, cut_relevant, cut_history = cut_signals(cut, seed)
        signals.append(cut_scores)
        relevant.append(cut_relevant)
        histories.append(cut_history)
        timings.append(timing_rows(cut))
        hours.append(hour_rows(cut, users))
        cut_activity, cut_departments, cut_hours = line_cases(cut, users)
        activity.append(cut_activity)
        departments += cut_departments
        line_hours.append(cut_hours)
    history = up_to(events, split.fit.eval_cut)  # before every user's cut
    gaps = orders(history).select(
        gap=pl.col("ts").diff().over("user_id").dt.total_seconds() / DAY_SECONDS)
    global_median = float(np.median(gaps["gap"].drop_nulls().to_numpy()))
    result = {
        "split": {"fit_cut": str(split.fit.fit_cut), "first_cut": str(split.fit.eval_cut),
                  "last_cut": str(split.cuts["cut"].max()), "end": str(split.fit.end),
                  "cuts": split.cuts["cut"].n_unique(), "users": split.cuts.height,
                  "fit_users": fit_users},
        "departments": department_metrics(ranker, pl.concat(signals), pl.concat(relevant),
                                          pl.concat(histories)),
        "reorder_timing": timing_metrics(pl.concat(timings), global_median),
        "order_hour": hour_metrics(pl.concat(hours), best_hour(order_hours(history, users))),
        "department_hour": hit_rates(timing, np.vstack(activity), departments,
                                     np.concatenate(line_hours)),
    }
    seconds["evaluate"] = time.perf_counter() - began
    return result | {"seconds": {name: round(value, 2) for name, value in seconds.items()}}
