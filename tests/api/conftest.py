"""A trained and published small world behind a real app, on its own Redis database."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from decisions.catalog import OfferCatalog
from features.contract.offers import offers_file, read_offers
from features.pipeline import load_features
from features.store.redis_store import RedisFeatureStore
from models.registry import PROMOTED, ModelRegistry
from nbo.settings import Settings
from training.synthetic.world import generate_world
from training.train import train

API_DB = 1  # the per-test fixtures flush database 0


@dataclass(frozen=True)
class ServedWorld:
    directory: Path
    models: Path
    redis_url: str
    users: list[str]

    def settings(self, **changes: object) -> Settings:
        return Settings(redis_url=self.redis_url, models_dir=self.models,
                        data_dir=self.directory / "data", **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class VersionCopy:
    """A copy of the promoted model version, not promoted yet."""

    registry: ModelRegistry
    client: redis.Redis
    original: str  # the version promoted before
    copy: str


@contextmanager
def promoted_version_copied(world: ServedWorld, suffix: str) -> Iterator[VersionCopy]:
    """A copy of the promoted version named `{original}-{suffix}`; whatever a test promotes
    meanwhile, the original is promoted again after."""
    client = redis.Redis.from_url(world.redis_url)
    registry = ModelRegistry(world.models, client)
    original = registry.promoted()
    assert original is not None
    copy = f"{original}-{suffix}"
    shutil.copytree(world.models / original, world.models / copy)
    try:
        yield VersionCopy(registry, client, original, copy)
    finally:
        client.set(PROMOTED, original)
        client.close()


def _on_db(url: str, db: int) -> str:
    return f"{url}{'&' if '?' in url else '?'}db={db}"


@pytest.fixture(scope="session")
def served_world(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedWorld]:
    root = tmp_path_factory.mktemp("served")
    directory = root / "world"
    days = 60
    start = datetime.now(UTC).date() - timedelta(days=days)
    generate_world(directory, users=400, days=days, seed=11, start=start)
    url = _on_db(redis_url, API_DB)
    client = redis.Redis.from_url(url)
    client.flushdb()
    registry = ModelRegistry(root / "models", client)
    registry.promote(train(directory, registry, seed=1).version)
    RedisFeatureStore(client).publish(load_features(directory))
    found = offers_file(directory)
    assert found is not None
    OfferCatalog(client).replace_all(read_offers(found)[0])
    users = pl.read_parquet(directory / "users.parquet")["user_id"].sort().to_list()
    yield ServedWorld(directory, root / "models", url, users)
    client.flushdb()
    client.close()


@pytest.fixture
def api(served_world: ServedWorld) -> Iterator[TestClient]:
    with TestClient(create_app(served_world.settings())) as client:
        yield client
