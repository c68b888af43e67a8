"""Category timing: at which local hours each category is bought, and so the hour a user
most likely shops each category.

Some purchases of a category happen at the category's own hours, the rest at the
buyer's own; so a user's hours for category c are a mixture:

    p(h | u, c) = w_c * curve_c(h) + (1 - w_c) * user_u(h)
    user_u(h)   = (smooth(a_u)(h) + k_user * overall(h)) / (a_u + k_user)
    hour(u, c)  = argmax_h p(h | u, c)

where a_u(h) is the user's shopping activity by local hour (the served `hourly_activity`:
their busiest hours) and overall(h) the smoothed share of all purchase lines at h. Per
category, the share w_c and curve_c are fitted by expectation-maximization on the
purchase lines, with their buyers' curves held fixed; curve_c is shrunk toward overall.
A category bought at its buyers' own hours gets a curve close to overall (w_c then holds
only the purchases away from the buyers' busiest hours); one bought at hours of its own
(coffee in the morning) a curve peaking there and a larger w_c. Unknown categories get
w_c = 0: the user's own busiest hour.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import cached_property

import numpy as np
import polars as pl

from features.contract.schema import EventType
from features.event import RETURNED
from features.local_time import HOUR_COLUMN, with_hour_of_week
from features.pipeline import BatchFeatures
from features.state import UserState
from models.send_time import (
    HOURS,
    activity_by_hour,
    hourly_activity,
    per_user,
    smoothing_kernel,
)

ARTIFACT = "category_timing.json"
CURVE_BANDWIDTH = 1.0  # hours of smoothing of the category and overall curves
USER_CURVES = tuple((strength, bandwidth) for strength in (2.0, 8.0)
                    for bandwidth in (1.0, 2.0, 3.0))  # (user_strength, bandwidth) tried


def purchase_hours(events: pl.DataFrame, zones: pl.DataFrame) -> pl.DataFrame:
    """(user_id, category, local_hour) of every purchase line with a category (returns
    left out), in the buyer's local time; `zones` is (user_id, timezone)."""
    bought = events.filter((pl.col("event_type") == EventType.PURCHASE.value) & ~RETURNED
                           & pl.col("category").is_not_null())
    return with_hour_of_week(bought.select("user_id", "category", "ts"), zones).select(
        "user_id", "category", HOUR_COLUMN)


def activity_rows(batch: BatchFeatures, user_ids: pl.Series) -> np.ndarray:
    """(len(user_ids), 24): each listed user's activity by local hour in `batch`."""
    rows = pl.DataFrame({"user_id": user_ids}).with_row_index("__row")
    cells = hourly_activity(batch).join(rows, on="user_id")
    matrix = np.zeros((rows.height, HOURS))
    np.add.at(matrix, (cells["__row"].to_numpy(), cells["local_hour"].to_numpy()),
              cells["activity"].to_numpy())
    return matrix


@dataclass(frozen=True)
class _Mixture:
    shares: dict[str, float]
    curves: dict[str, list[float]]
    log_likelihood: float  # of the lines it was fitted on


def _mixture(categories: np.ndarray, hours: np.ndarray, users: np.ndarray,
             overall: np.ndarray, strength: float, rounds: int) -> _Mixture:
    """EM, per category, of w_c and curve_c with the lines' user curves (n x 24) fixed."""
    kernel = smoothing_kernel(CURVE_BANDWIDTH)
    own_hours = users[np.arange(len(hours)), hours]
    shares, curves, log_likelihood = {}, {}, 0.0
    for category in sorted(set(categories.tolist())):
        rows = np.flatnonzero(categories == category)
        at, own = hours[rows], own_hours[rows]
        share, curve = 0.5, overall
        for _ in range(rounds):
            theirs = share * curve[at]
            weight = theirs / (theirs + (1 - share) * own)  # P(category's hours | line)
            share = float(weight.mean())
            counted = np.bincount(at, weights=weight, minlength=HOURS) @ kernel
            curve = (counted + strength * overall) / (weight.sum() + strength)
        shares[str(category)], curves[str(category)] = share, curve.tolist()
        log_likelihood += float(np.log(share * curve[at] + (1 - share) * own).sum())
    return _Mixture(shares, curves, log_likelihood)


@dataclass(frozen=True)
class CategoryTiming:
    overall: list[float]  # 24 smoothed shares of all purchase lines by local hour
    shares: dict[str, float]  # category -> w_c, the share bought at the category's hours
    curves: dict[str, list[float]]  # category -> curve_c, 24 shares
    user_strength: float = 2.0  # a user's activity weighs the overall curve as this much
    bandwidth: float = 1.0  # hours of smoothing of a user's activity

    @classmethod
    def fit(cls, purchases: pl.DataFrame, activity: np.ndarray, strength: float = 20.0,
            rounds: int = 50) -> CategoryTiming:
        """From `purchase_hours` and, row for row, the buyer's activity by local hour. How
        sharp a user's own curve is (its smoothing and its weight against all purchases)
        is chosen on USER_CURVES by the likelihood of the lines."""
        lines = np.bincount(purchases[HOUR_COLUMN].to_numpy(), minlength=HOURS).astype(float)
        overall = ((lines / lines.sum() if lines.sum() else np.full(HOURS, 1.0 / HOURS))
                   @ smoothing_kernel(CURVE_BANDWIDTH))
        categories = purchases["category"].to_numpy()
        hours = purchases[HOUR_COLUMN].to_numpy()
        fitted = []
        for user_strength, bandwidth in USER_CURVES:
            shape = cls(overall.tolist(), {}, {}, user_strength, bandwidth)
            mixture = _mixture(categories, hours, shape.user_curves(activity), overall,
                               strength, rounds)
            fitted.append((mixture.log_likelihood, user_strength, bandwidth, mixture))
        _, user_strength, bandwidth, best = max(fitted, key=lambda found: found[0])
        return cls(overall.tolist(), best.shares, best.curves, user_strength, bandwidth)

    def user_curves(self, activity: np.ndarray) -> np.ndarray:
        """Users' shopping curves (n x 24, rows sum to 1) from their activity by local hour."""
        total = activity.sum(axis=1, keepdims=True)
        return np.asarray((activity @ smoothing_kernel(self.bandwidth)
                           + self.user_strength * self._overall_curve)
                          / (total + self.user_strength))

    @cached_property
    def _overall_curve(self) -> np.ndarray:
        return np.asarray(self.overall, dtype=np.float64)

    @cached_property
    def _category_curves(self) -> dict[str, np.ndarray]:
        return {category: np.asarray(curve, dtype=np.float64)
                for category, curve in self.curves.items()}

    def _parts(self, categories: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        known, overall = self._category_curves, self._overall_curve
        shares = np.array([self.shares.get(category, 0.0) for category in categories])
        curves = np.array([known.get(category, overall) for category in categories]
                          ).reshape(len(categories), HOURS)
        return shares[:, None], curves

    def hours(self, activity: np.ndarray, categories: Sequence[str]) -> np.ndarray:
        """Per row, the local hour its user most likely shops its category (`activity`:
        one row per category, or one row for all of them)."""
        shares, curves = self._parts(categories)
        mixed = shares * curves + (1 - shares) * self.user_curves(activity)
        return np.asarray(mixed.argmax(axis=1))

    def category_hour(self, category: str) -> int:
        """The category's own busiest hour (of the purchases at its own hours)."""
        return int(np.argmax(self.curves.get(category, self.overall)))

    def hours_for(self, state: UserState, now: datetime,
                  categories: Sequence[str]) -> dict[str, int]:
        """Category -> the local hour (0..23) one user most likely shops it, at `now`."""
        return self.hours_of([(state, categories)], now)[0]

    def hours_of(self, asked: Sequence[tuple[UserState, Sequence[str]]],
                 now: datetime) -> list[dict[str, int]]:
        """`hours_for` of each (user, categories), computed as one matrix."""
        if not asked:
            return []
        activity = np.concatenate([np.repeat(activity_by_hour(state, now), len(categories),
                                             axis=0) for state, categories in asked])
        every = [category for _, categories in asked for category in categories]
        return per_user([categories for _, categories in asked], self.hours(activity, every))

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> CategoryTiming:
        return cls(**json.loads(raw))
