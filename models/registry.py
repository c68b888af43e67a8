"""Versioned models on disk, the promoted one named in Redis.

    MODELS_DIR/VERSION/
        *.onnx, *.txt, *.npz     the artifacts (no pickles)
        meta.json                schemas, parameters, data fingerprint, library versions
        metrics.json             what evaluation measured
        checksums.json           sha256 of every file above

A version is written to a hidden directory and renamed into place, so a reader never sees
half of one. Promotion and loading verify the checksums first: a corrupt or incomplete
version is refused. The promoted version is a Redis key (with a history list for
rollback), so every API process can reload it without a restart.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from nbo.errors import NboError

PREFIX = "nbo:v1:models"
PROMOTED = f"{PREFIX}:promoted"
HISTORY = f"{PREFIX}:history"  # promoted versions, newest first
CHECKSUMS, META, METRICS = "checksums.json", "meta.json", "metrics.json"


class ModelVersionError(NboError):
    """A model version that is missing, incomplete or corrupt."""

    http_status = 409
    exit_code = 2


@dataclass(frozen=True)
class ModelVersion:
    version: str
    path: Path
    meta: dict[str, Any]
    metrics: dict[str, Any]

    def artifact(self, name: str) -> bytes:
        return (self.path / name).read_bytes()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class ModelRegistry:
    def __init__(self, root: Path, client: redis.Redis) -> None:
        self.root = root
        self._client = client

    def register(self, artifacts: Mapping[str, bytes], meta: Mapping[str, Any],
                 metrics: Mapping[str, Any], version: str | None = None) -> ModelVersion:
        """Write a new version; its name defaults to the UTC time."""
        version = version or datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = self.root / version
        if target.exists():
            raise ModelVersionError(f"model version {version} already exists in {self.root}")
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=self.root))
        try:
            for name, content in artifacts.items():
                (staging / name).write_bytes(content)
            (staging / META).write_text(json.dumps({**meta, "version": version}, indent=2))
            (staging / METRICS).write_text(json.dumps(metrics, indent=2))
            checksums = {p.name: _sha256(p) for p in sorted(staging.iterdir())}
            (staging / CHECKSUMS).write_text(json.dumps(checksums, indent=2))
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return self.get(version)

    def versions(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and not p.name.startswith("."))

    def verify(self, version: str) -> None:
        """Raise ModelVersionError unless every file matches its recorded checksum."""
        path = self.root / version
        listed = path / CHECKSUMS
        if not listed.is_file():
            raise ModelVersionError(f"model version {version} not found or incomplete "
                                    f"(no {CHECKSUMS} in {path})")
        expected: dict[str, str] = json.loads(listed.read_text())
        bad = [name for name, digest in expected.items()
               if not (path / name).is_file() or _sha256(path / name) != digest]
        if bad:
            raise ModelVersionError(f"model version {version} is corrupt: {', '.join(bad)} "
                                    "missing or changed since it was registered")

    def get(self, version: str) -> ModelVersion:
        """A verified version."""
        self.verify(version)
        path = self.root / version
        return ModelVersion(version, path, json.loads((path / META).read_text()),
                            json.loads((path / METRICS).read_text()))

    def promoted(self) -> str | None:
        value: Any = self._client.get(PROMOTED)
        return None if value is None else value.decode()

    def promote(self, version: str) -> None:
        self.verify(version)
        pipe = self._client.pipeline(transaction=True)
        pipe.set(PROMOTED, version)
        pipe.lpush(HISTORY, version)
        pipe.execute()

    def rollback(self) -> str:
        """Promote the version promoted before the current one; returns it."""
        history: Any = self._client.lrange(HISTORY, 0, -1)
        versions: list[str] = [v.decode() for v in history]
        current = self.promoted()
        earlier = [v for v in versions[1:] if v != current]
        if not earlier:
            raise ModelVersionError("no earlier promoted version to roll back to")
        self.verify(earlier[0])
        pipe = self._client.pipeline(transaction=True)
        pipe.lpop(HISTORY)
        pipe.set(PROMOTED, earlier[0])
        pipe.execute()
        return earlier[0]
