"""Ground truth tables: what the world's users really prefer, when and how they respond.

Models are scored against these. Every probability here is the one the simulation used.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from training.synthetic.catalog import Catalog
from training.synthetic.clock import Clock
from training.synthetic.offers import OfferSet
from training.synthetic.population import (
    LIFECYCLE_TYPES,
    MESSAGE_CHANNELS,
    NEVER,
    RESPONSE_TYPES,
    TIMEZONES,
    Population,
    expected_offer_uplift,
    hour_multiplier,
)

BRAND_PREFERENCE_FLOOR = 1e-4  # brands a user prefers less than this are left out


def _long(users: Population, columns: dict[str, np.ndarray], labels: np.ndarray,
          label_name: str) -> pl.DataFrame:
    """A (users x things) set of matrices as a long table, one row per user and thing."""
    n, m = next(iter(columns.values())).shape
    return pl.DataFrame({
        "user_id": pl.Series(users.ids).gather(np.repeat(np.arange(n), m)),
        label_name: pl.Series(labels).gather(np.tile(np.arange(m), n)),
        **{name: matrix.reshape(-1) for name, matrix in columns.items()},
    })


def _day_or_null(clock: Clock, days: np.ndarray) -> pl.Series:
    moments = clock.start_epoch + days.astype(np.int64) * 86_400
    series = pl.Series(np.where(days < NEVER, moments, 0) * 1_000_000)
    return pl.select(pl.when(pl.lit(pl.Series(days)) < NEVER)
                     .then(pl.lit(series).cast(pl.Datetime("us", "UTC")))).to_series()


def users_truth(users: Population, clock: Clock) -> pl.DataFrame:
    end = clock.days
    state = np.select([users.churn_day < end, users.dormant_day < end],
                      ["churned", "dormant"], "active")
    return pl.DataFrame({
        "user_id": users.ids,
        "timezone": np.array(TIMEZONES)[users.tz_index],
        "lifecycle_type": np.array(LIFECYCLE_TYPES)[users.lifecycle_type],
        "state_at_end": state,
        "dormant_from": _day_or_null(clock, users.dormant_day),
        "churned_from": _day_or_null(clock, users.churn_day),
        "sessions_per_day": users.activity,
        "price_sensitivity": users.price_sensitivity,
        "activity_peak_hour": users.activity_peak,
        "response_type": np.array(RESPONSE_TYPES)[users.response_type],
        "p_convert_no_offer": users.base_conversion,
        "fatigue": users.fatigue,
    })


def category_truth(users: Population, catalog: Catalog) -> pl.DataFrame:
    cycle = catalog.cycle_days[None, :] * users.cycle_factor
    return _long(users, {"preference": users.category_pref, "cycle_days": cycle},
                 catalog.category_names, "category")


def brand_truth(users: Population, catalog: Catalog) -> pl.DataFrame:
    joint = users.brand_pref * users.category_pref[:, catalog.brand_category]
    frame = _long(users, {"preference": joint}, catalog.brand_names, "brand")
    brand_category = pl.Series(catalog.category_names[catalog.brand_category])
    frame = frame.with_columns(category=brand_category.gather(
        np.tile(np.arange(len(brand_category)), len(users))))
    return frame.filter(pl.col("preference") >= BRAND_PREFERENCE_FLOOR)


def best_hours(users: Population) -> tuple[np.ndarray, np.ndarray]:
    """Per user x channel: the best local hour of the week (0 = Monday 00h) and mean response."""
    hours = np.arange(168)
    weekend = (hours // 24) >= 5
    curve = hour_multiplier(users.peak_hour[..., None], users.peak_width[..., None],
                            users.weekend_factor[..., None], hours % 24, weekend)
    return curve.argmax(axis=-1), curve.mean(axis=-1)


def channel_truth(users: Population) -> pl.DataFrame:
    best_how, mean_multiplier = best_hours(users)
    return _long(users, {
        "consent": users.consent,
        "p_open_best_hour": users.open_rate,
        "p_open_mean": users.open_rate * mean_multiplier,
        "p_click_given_open": users.click_rate,
        "best_hour_local": best_how % 24,
        "best_hour_of_week_local": best_how,
        "peak_width_hours": users.peak_width,
        "weekend_factor": users.weekend_factor,
    }, np.array(MESSAGE_CHANNELS), "channel")


def offer_truth(users: Population, offers: OfferSet) -> pl.DataFrame:
    without = np.repeat(users.base_conversion[:, None], len(offers), axis=1)
    return _long(users, {
        "p_convert_without": without,
        "p_convert_with": without + users.uplift,
        "uplift": users.uplift,
        # what the user's traits say before their reactions are drawn (the best choice
        # without observing those: the traits-known policy of training/offers/oracle.py)
        "expected_uplift": expected_offer_uplift(offers, users.category_pref,
                                                 users.price_sensitivity, users.response_type),
    }, offers.ids, "offer_id")


def truth_tables(users: Population, catalog: Catalog, offers: OfferSet,
                 clock: Clock) -> dict[str, pl.DataFrame]:
    """Every per-user ground truth table for one chunk of users, by file name."""
    return {
        "users": users_truth(users, clock),
        "category_affinity": category_truth(users, catalog),
        "brand_affinity": brand_truth(users, catalog),
        "channels": channel_truth(users),
        "offer_response": offer_truth(users, offers),
    }
