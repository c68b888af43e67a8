"""A small synthetic world's tables, loaded once, and features over part or all of it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl
import pytest

from features.contract.schema import EVENTS, ITEMS, USERS
from features.contract.tables import load_table
from features.event import Event
from features.pipeline import BatchFeatures, compute_features
from training.synthetic.world import generate_world


@dataclass(frozen=True)
class SplitWorld:
    events: pl.DataFrame
    users: pl.DataFrame
    items: pl.DataFrame
    cut: datetime
    early: BatchFeatures  # over events up to the cut
    full: BatchFeatures  # over all events

    @property
    def late_events(self) -> list[Event]:
        """Events after the cut, in time order (as the live path receives them)."""
        late = self.events.filter(pl.col("ts") > self.cut).sort("ts", maintain_order=True)
        return [Event.from_row(row) for row in late.iter_rows(named=True)]


@pytest.fixture(scope="session")
def split_world(tmp_path_factory: pytest.TempPathFactory) -> SplitWorld:
    directory = tmp_path_factory.mktemp("split-world")
    generate_world(directory, users=300, days=30, seed=5)
    events = load_table(directory, EVENTS).frame
    users, items = load_table(directory, USERS).frame, load_table(directory, ITEMS).frame
    last = events["ts"].max()
    assert isinstance(last, datetime)
    cut = last - timedelta(days=4)
    return SplitWorld(events, users, items, cut,
                      compute_features(events, users, items, cut),
                      compute_features(events, users, items))
