"""Country priors: each country's buying, shrunk toward everyone's by its evidence."""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

import polars as pl
import pytest

from features.pipeline import BatchFeatures
from training.affinity.priors import MIN_COUNTRY_LINES, PRIOR_LINES, country_priors


def _batch(lines: list[tuple[str, str, int]], countries: dict[str, str | None]) -> BatchFeatures:
    """Only what the priors read: purchase lines per (user, category) and the users."""
    return cast(BatchFeatures, SimpleNamespace(
        category_purchases=pl.DataFrame(lines, schema=["user_id", "category", "lines"],
                                        orient="row"),
        users=pl.DataFrame({"user_id": list(countries), "country": list(countries.values())})))


def test_a_country_leans_its_own_way_by_its_evidence() -> None:
    lines = [("fr1", "coffee", 300), ("us1", "tea", 600), ("us2", "coffee", 100),
             ("jp1", "tea", MIN_COUNTRY_LINES - 1), ("x1", "coffee", 1000)]
    priors = country_priors(_batch(lines, {"fr1": "FR", "us1": "US", "us2": "US",
                                           "jp1": "JP", "x1": None}))
    assert set(priors) == {"FR", "US"}  # JP has too few lines; no country is no prior
    overall = {"coffee": 1400 / 2049, "tea": (600 + MIN_COUNTRY_LINES - 1) / 2049}
    assert priors["FR"]["coffee"] == pytest.approx(
        (300 + PRIOR_LINES * overall["coffee"]) / (300 + PRIOR_LINES))
    assert priors["US"]["tea"] == pytest.approx(
        (600 + PRIOR_LINES * overall["tea"]) / (700 + PRIOR_LINES))
    for shares in priors.values():
        assert sum(shares.values()) == pytest.approx(1.0)
    assert priors["FR"]["coffee"] > overall["coffee"] > priors["US"]["coffee"]
