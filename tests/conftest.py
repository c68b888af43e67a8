"""Shared fixtures: every test gets its own data directory and a real, clean Redis database.

Tests use the server in NBO_REDIS_URL only when it is set on purpose; otherwise they start
an embedded redis-server under a temporary directory, never a developer's own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from nbo.redis_server import EmbeddedRedis
from nbo.settings import get_settings


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
