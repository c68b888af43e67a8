"""What a user with no history of their own is likely to buy: each category's share of the
purchase lines of the users of their country, shrunk toward the share over all users.

A country with few purchase lines says little: its shares are pulled toward the global ones
by `PRIOR_LINES` pseudo-lines, and a country with fewer than `MIN_COUNTRY_LINES` is left
out (its users get the global prior). Saved with the model as `category_priors.json`.
"""

from __future__ import annotations

import polars as pl

from features.pipeline import BatchFeatures
from training.affinity.signals import category_popularity

PRIOR_LINES = 200.0  # pseudo purchase lines of the global shares in each country's
MIN_COUNTRY_LINES = 50


def country_priors(batch: BatchFeatures) -> dict[str, dict[str, float]]:
    """country -> category -> share of purchase lines, shrunk toward the global shares."""
    overall = category_popularity(batch)
    lines = (batch.category_purchases.join(batch.users.select("user_id", "country"),
                                           on="user_id")
             .drop_nulls("country").group_by("country", "category")
             .agg(lines=pl.col("lines").sum()))
    priors: dict[str, dict[str, float]] = {}
    for (country,), group in lines.sort("country").group_by("country", maintain_order=True):
        total = float(group["lines"].sum())
        if total < MIN_COUNTRY_LINES:
            continue
        own = dict(zip(group["category"], group["lines"], strict=True))
        priors[str(country)] = {
            category: (own.get(category, 0) + PRIOR_LINES * share) / (total + PRIOR_LINES)
            for category, share in overall.items()}
    return priors
