"""The split world's full features as they are, and with some users' country unknown."""

from __future__ import annotations

from dataclasses import replace

import polars as pl
import pytest

from features.pipeline import BatchFeatures
from tests.conftest import SplitWorld


@pytest.fixture(params=["known countries", "every third country unknown"])
def full_batch(request: pytest.FixtureRequest, split_world: SplitWorld) -> BatchFeatures:
    """`split_world.full`, and a copy where every third user has no country (the
    synthetic world gives everyone one), so both halves take the unknown-country path."""
    if request.param == "known countries":
        return split_world.full
    unknown = pl.int_range(pl.len()) % 3 == 0
    return replace(split_world.full, users=split_world.full.users.with_columns(
        country=pl.when(unknown).then(None).otherwise(pl.col("country"))))
