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
import math
import re
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
RELOADS = f"{PREFIX}:reloads"  # reloads asked (POST /v1/models/reload), which every worker
# follows: each tries the promoted version again, even one that failed it before
CHECKSUMS, META, METRICS = "checksums.json", "meta.json", "metrics.json"


@dataclass(frozen=True)
class Promotion:
    """What the workers follow: the promoted version, and how many reloads were asked."""

    version: str | None
    reloads: int


def _promotion(replies: list[Any]) -> Promotion:
    """From the replies (the promoted version, the reloads asked) of one pipeline."""
    version, reloads = replies
    return Promotion(None if version is None else version.decode(), int(reloads or 0))


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


_VERSION_NAME = re.compile(r"[^./\\\x00-\x1f][^/\\\x00-\x1f]*")
"""A version's directory name, or a file's in it: no separator, no control character,
not starting with a dot (no `..`, no hidden staging directory)."""


def _checksums(version: str, path: Path) -> dict[str, str]:
    """The version's checksums file: file name -> sha256."""
    try:
        listed = json.loads((path / CHECKSUMS).read_text())
    except FileNotFoundError as error:
        raise ModelVersionError(f"model version {version} not found or incomplete (no "
                                f"{CHECKSUMS} in {path})") from error
    except (OSError, ValueError) as error:
        raise ModelVersionError(f"model version {version} is corrupt: {CHECKSUMS} is not "
                                f"readable JSON ({error})") from error
    if not (isinstance(listed, dict) and all(
            isinstance(name, str) and _VERSION_NAME.fullmatch(name) and isinstance(digest, str)
            for name, digest in listed.items())):
        raise ModelVersionError(f"model version {version} is corrupt: {CHECKSUMS} is not an "
                                "object of file names to sha256 digests")
    return listed


def _json_object(version: str, path: Path) -> dict[str, Any]:
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ModelVersionError(f"model version {version}: {path.name} is not readable JSON "
                                f"({error})") from error
    if not isinstance(found, dict):
        raise ModelVersionError(f"model version {version}: {path.name} is not a JSON object")
    return found


class ModelRegistry:
    def __init__(self, root: Path, client: redis.Redis) -> None:
        self.root = root
        self._client = client

    def register(self, artifacts: Mapping[str, bytes], meta: Mapping[str, Any],
                 metrics: Mapping[str, Any], version: str | None = None) -> ModelVersion:
        """Write a new version; its name defaults to the UTC time."""
        version = version or datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = self.path(version)
        if target.exists():
            raise ModelVersionError(f"model version {version} already exists in {self.root}")
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=self.root))
        try:
            for name, content in artifacts.items():
                (staging / name).write_bytes(content)
            (staging / META).write_text(_json({**meta, "version": version}))
            (staging / METRICS).write_text(_json(metrics))
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

    def path(self, version: str) -> Path:
        """The version's directory; a name that is not one (a path, `..`) is refused."""
        if not _VERSION_NAME.fullmatch(version):
            raise ModelVersionError(
                f"{version!r} is not a model version name (a directory name in the "
                "registry: no '/', not starting with '.'; `nbo models list` lists them)")
        return self.root / version

    def verify(self, version: str) -> None:
        """Raise ModelVersionError unless every file matches its recorded checksum, the
        checksums cover the version's metadata and metrics, and the version holds no file
        it was registered without: serving loads an optional part (an offer model, item
        recommendations, category timing, priors) when its file is there, so a file added
        later would be served unchecked. Hidden files (a desktop's `.DS_Store`) and
        directories are no part of a version and are left alone."""
        path = self.path(version)
        expected = _checksums(version, path)
        missing = [name for name in (META, METRICS) if name not in expected]
        if missing:
            raise ModelVersionError(f"model version {version} is incomplete: {CHECKSUMS} "
                                    f"lists no {', '.join(missing)}")
        try:
            added = sorted(entry.name for entry in path.iterdir()
                           if entry.is_file() and not entry.name.startswith(".")
                           and entry.name not in expected and entry.name != CHECKSUMS)
            bad = [name for name, digest in expected.items()
                   if not (path / name).is_file() or _sha256(path / name) != digest]
        except OSError as error:  # not readable (permissions): refused, as a corrupt one
            raise ModelVersionError(f"model version {version} is not readable: "
                                    f"{Path(str(error.filename)).name}: {error.strerror}",
                                    ) from error
        if bad:
            raise ModelVersionError(f"model version {version} is corrupt: {', '.join(bad)} "
                                    "missing or changed since it was registered")
        if added:
            raise ModelVersionError(
                f"model version {version} holds files it was not registered with: "
                f"{', '.join(added)} (not in {CHECKSUMS}): remove them, or train a new "
                "version with them")

    def get(self, version: str) -> ModelVersion:
        """A verified version."""
        self.verify(version)
        path = self.path(version)
        return ModelVersion(version, path, _json_object(version, path / META),
                            _json_object(version, path / METRICS))

    def promoted(self) -> str | None:
        return self.promotion().version

    def promotion(self) -> Promotion:
        """The promoted version and the reloads asked so far, read together."""
        pipe = self._client.pipeline(transaction=True)
        pipe.get(PROMOTED)
        pipe.get(RELOADS)
        return _promotion(pipe.execute())

    def ask_reload(self) -> Promotion:
        """Count a reload asked (every worker tries the promoted version again); the
        promotion it is for."""
        pipe = self._client.pipeline(transaction=True)
        pipe.get(PROMOTED)
        pipe.incr(RELOADS)
        return _promotion(pipe.execute())

    def promote(self, version: str) -> None:
        self.verify(version)
        pipe = self._client.pipeline(transaction=True)
        pipe.set(PROMOTED, version)
        if version != self.promoted():  # promoted again: one entry in the history
            pipe.lpush(HISTORY, version)
        pipe.execute()

    def rollback(self) -> str:
        """Promote the version promoted before the current one; returns it. The history
        keeps it as its newest entry, so a rollback after the next promotion returns here."""
        history: Any = self._client.lrange(HISTORY, 0, -1)
        versions: list[str] = [v.decode() for v in history]
        current = self.promoted()
        earlier = next((at for at, version in enumerate(versions) if version != current), None)
        if earlier is None:
            raise ModelVersionError("no earlier promoted version to roll back to")
        self.verify(versions[earlier])
        pipe = self._client.pipeline(transaction=True)
        pipe.ltrim(HISTORY, earlier, -1)
        pipe.set(PROMOTED, versions[earlier])
        pipe.execute()
        return versions[earlier]


def _json(value: object) -> str:
    """JSON text with NaN and infinities (a metric without examples to measure it on)
    written as null: JSON has no such numbers, and strict readers refuse the file."""
    return json.dumps(_finite(value), indent=2, allow_nan=False)


def _finite(value: object) -> object:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(inner) for key, inner in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(inner) for inner in value]
    return value
