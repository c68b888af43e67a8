"""Department timing: the local hour of each line of a user's last order.

nbo's category-timing model (models/category_timing.py) is fitted as `nbo train` fits it
(training/category_timing.py), on the orders of 42 days before the earliest cut; every line of a
last order is a case, scored by `hit_rates`: the model's hour (the department's own hours
mixed with the user's), the user's activity alone, the department's busiest hour and the
busiest hour of all orders, each a hit within 1 hour of the order's local hour.
Instacart's departments are bought at nearly the same hours, so this shows whether the
model leaves a user's hours alone where a category has no hours of its own.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from benchmarks.instacart.split import Cut
from features.local_time import HOUR_COLUMN
from models.category_timing import activity_rows, purchase_hours


def line_cases(cut: Cut, users: pl.DataFrame) -> tuple[np.ndarray, list[str], np.ndarray]:
    """The last orders' lines of the cut's users: activity at the cut (n x 24), department
    and local hour."""
    lines = purchase_hours(cut.after, users.select("user_id", "timezone"))
    return (activity_rows(cut.batch, lines["user_id"]), lines["category"].to_list(),
            lines[HOUR_COLUMN].to_numpy())
