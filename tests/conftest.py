"""Shared fixtures: every test gets its own data directory and a real, clean Redis database;
a small synthetic world's features, over part or all of it, are built once per session.

Tests use the server in NBO_REDIS_URL only when it is set on purpose; otherwise they start
an embedded redis-server under a temporary directory, never a developer's own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
import redis

from features.contract.schema import EVENTS, ITEMS, USERS
from features.contract.tables import load_table
from features.event import Event
from features.pipeline import BatchFeatures, compute_features
from nbo.redis_server import EmbeddedRedis
from nbo.settings import get_settings
from training.synthetic.world import generate_world


@pytest.fixture(autouse=True)
def isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Point nbo's data directory at the test's own folder and rebuild settings."""
    monkeypatch.setenv("NBO_DATA_DIR", str(tmp_path / "nbo-data"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis server for the whole session: NBO_REDIS_URL's, or an embedded one."""
    configured = os.environ.get("NBO_REDIS_URL")
    if configured:
        yield configured
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client on a database emptied before and after the test."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


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
    """300 users over 30 days; `early` stops 4 days before the end."""
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
