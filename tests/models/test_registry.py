import json
from pathlib import Path

import pytest
import redis

from models.registry import ModelRegistry, ModelVersionError


def _register(registry: ModelRegistry, version: str) -> None:
    registry.register({"model.txt": f"trees of {version}".encode()},
                      {"features": ["a", "b"]}, {"auc": 0.7}, version=version)


def test_register_promote_load_and_roll_back(tmp_path: Path, redis_client: redis.Redis) -> None:
    registry = ModelRegistry(tmp_path / "models", redis_client)
    _register(registry, "v1")
    _register(registry, "v2")
    assert registry.versions() == ["v1", "v2"] and registry.promoted() is None
    registry.promote("v1")
    registry.promote("v2")
    loaded = registry.get(registry.promoted() or "")
    assert loaded.artifact("model.txt") == b"trees of v2"
    assert loaded.meta == {"features": ["a", "b"], "version": "v2"}
    assert loaded.metrics == {"auc": 0.7}
    assert registry.rollback() == "v1" and registry.promoted() == "v1"
    with pytest.raises(ModelVersionError, match="no earlier"):
        registry.rollback()


def test_a_corrupt_or_missing_version_is_refused(tmp_path: Path,
                                                redis_client: redis.Redis) -> None:
    registry = ModelRegistry(tmp_path / "models", redis_client)
    _register(registry, "v1")
    (tmp_path / "models" / "v1" / "model.txt").write_bytes(b"tampered")
    with pytest.raises(ModelVersionError, match="corrupt: model.txt"):
        registry.promote("v1")
    with pytest.raises(ModelVersionError, match="not found"):
        registry.promote("v9")
    with pytest.raises(ModelVersionError, match="already exists"):
        _register(registry, "v1")
    assert registry.promoted() is None


def test_a_version_holding_a_file_it_was_not_registered_with_is_refused(
        tmp_path: Path, redis_client: redis.Redis) -> None:
    """Serving loads an optional part when its file is there: one added after registering
    would be served unchecked. Hidden files and directories are no part of a version."""
    registry = ModelRegistry(tmp_path / "models", redis_client)
    _register(registry, "v1")
    directory = tmp_path / "models" / "v1"
    (directory / ".DS_Store").write_bytes(b"a desktop's")
    (directory / "notes").mkdir()
    assert registry.get("v1").version == "v1"
    (tmp_path / "models" / ".v2-staging").mkdir()  # a registration cut short
    assert registry.versions() == ["v1"]
    (directory / "category_timing.json").write_bytes(b"not what training wrote")
    for refused in (lambda: registry.get("v1"), lambda: registry.promote("v1")):
        with pytest.raises(ModelVersionError, match="not registered with: "
                                                    "category_timing.json"):
            refused()
    assert registry.promoted() is None


def test_a_version_with_a_file_it_cannot_read_is_refused(
        tmp_path: Path, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not readable (its permissions): a ModelVersionError (a 409 on reload, a worker that
    starts without models), not a PermissionError (a 500, a worker that cannot start)."""
    registry = ModelRegistry(tmp_path / "models", redis_client)
    _register(registry, "v1")
    unreadable = tmp_path / "models" / "v1" / "model.txt"
    read_bytes = Path.read_bytes

    def refused(path: Path) -> bytes:
        if path == unreadable:
            raise PermissionError(13, "Permission denied", str(path))
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", refused)
    with pytest.raises(ModelVersionError, match="not readable: model.txt: Permission denied"):
        registry.get("v1")


def test_a_rollback_returns_to_the_version_promoted_before(
        tmp_path: Path, redis_client: redis.Redis) -> None:
    registry = ModelRegistry(tmp_path / "models", redis_client)
    for version in ("v1", "v2", "v3"):
        _register(registry, version)
    registry.promote("v1")
    registry.promote("v2")
    registry.promote("v2")  # again: still one step back to v1
    assert registry.rollback() == "v1"
    registry.promote("v3")
    assert registry.rollback() == "v1" and registry.promoted() == "v1"


def test_a_rollback_to_a_version_corrupted_since_is_refused(
        tmp_path: Path, redis_client: redis.Redis) -> None:
    registry = ModelRegistry(tmp_path / "models", redis_client)
    for version in ("v1", "v2"):
        _register(registry, version)
        registry.promote(version)
    (tmp_path / "models" / "v1" / "model.txt").write_bytes(b"tampered")
    with pytest.raises(ModelVersionError, match="corrupt: model.txt"):
        registry.rollback()
    assert registry.promoted() == "v2"


@pytest.mark.parametrize("name", ["../models/v1", "v1/", "/tmp", "..", ".hidden", ""])
def test_a_name_that_is_not_a_version_is_refused(tmp_path: Path, redis_client: redis.Redis,
                                                 name: str) -> None:
    registry = ModelRegistry(tmp_path / "models", redis_client)
    _register(registry, "v1")
    with pytest.raises(ModelVersionError, match="not a model version name"):
        registry.promote(name)
    assert registry.promoted() is None


@pytest.mark.parametrize(("checksums", "wanted"), [
    ('{"meta.json": "ab', "not readable JSON"),
    ("[]", "not an object"),
    ('{"../v2/model.txt": "00"}', "not an object"),
    ("{}", "incomplete"),
])
def test_a_broken_checksums_file_is_refused(tmp_path: Path, redis_client: redis.Redis,
                                            checksums: str, wanted: str) -> None:
    registry = ModelRegistry(tmp_path / "models", redis_client)
    _register(registry, "v1")
    (tmp_path / "models" / "v1" / "checksums.json").write_text(checksums)
    for check in (registry.promote, registry.get):
        with pytest.raises(ModelVersionError, match=wanted):
            check("v1")


def test_metrics_without_a_value_are_written_as_json_null(tmp_path: Path,
                                                          redis_client: redis.Redis) -> None:
    """A metric with no example to measure it on is NaN: written as is, strict JSON readers
    (a dashboard's, JSON.parse) refused the version's metrics.json and `nbo train`'s line."""
    registry = ModelRegistry(tmp_path / "models", redis_client)
    registry.register({"model.txt": b"trees"}, {"timings_s": {"fit": 0.5}},
                      {"auc": float("nan"), "channel": {"rates": [0.5, float("inf")]}},
                      version="v1")
    text = (tmp_path / "models" / "v1" / "metrics.json").read_text()
    strict = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    assert strict == {"auc": None, "channel": {"rates": [0.5, None]}}
    assert registry.get("v1").metrics == strict
