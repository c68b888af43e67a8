"""Every Redis key nbo's feature store uses, built in one place.

All keys start with PREFIX, whose `v1` is the key layout's version: a change of layout
gets a new prefix, and old and new can live side by side during a migration. Users are
spread over a published version's buckets by CRC-32 of their id; a user's keys carry the
bucket as a hash tag (`{b17}`), so in a Redis Cluster all of them, and the bucket's
profile hash, sit on one slot and one decision's read stays on one node.
"""

from __future__ import annotations

import re
import zlib

PREFIX = "nbo:v1"
CURRENT = f"{PREFIX}:features:current"  # the published version readers use
VERSIONS = f"{PREFIX}:features:versions"  # sorted set: version -> publish time
EVENTS = f"{PREFIX}:events"  # stream of accepted live events


def meta(version: str) -> str:
    """A version's schema, vocabularies, anchor and bucket count (JSON)."""
    return f"{PREFIX}:features:meta:{version}"


def bucket_of(user_id: str, buckets: int) -> int:
    return zlib.crc32(user_id.encode()) % buckets


def _tag(bucket: int) -> str:
    return f"{PREFIX}:{{b{bucket}}}"


def profiles(version: str, bucket: int) -> str:
    """Hash of user id -> packed batch features, for one bucket of a version."""
    return f"{_tag(bucket)}:profiles:{version}"


def _literal(text: str) -> str:
    """`text` in a SCAN pattern matching itself alone: a version named `x*` must not match
    every version starting with x."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def profiles_pattern(version: str) -> str:
    """A SCAN pattern matching every bucket's profile hash of a version."""
    return f"{PREFIX}:{{b*}}:profiles:{_literal(version)}"


def live(version: str, bucket: int, user_id: str) -> str:
    """Hash of the user's features changed by live events since the version's cut-off."""
    return f"{_tag(bucket)}:live:{version}:{user_id}"


def seen(version: str, bucket: int, user_id: str) -> str:
    """Set of the event ids already applied to the user in a version (idempotency)."""
    return f"{_tag(bucket)}:seen:{version}:{user_id}"


def version_pattern(version: str) -> str:
    """A SCAN pattern matching every per-user key of a version (and maybe others:
    `of_version` tells)."""
    return f"{PREFIX}:{{b*}}:*:{_literal(version)}:*"


def of_version(key: bytes, version: str) -> bool:
    """Whether `key`, found by `version_pattern` or `profiles_pattern`, is one of
    `version`'s own: a pattern's `*` also stretches over a user id holding `:{version}:`,
    which another version's key may."""
    name, escaped = key.decode(errors="replace"), re.escape(version)
    return re.fullmatch(rf"{re.escape(PREFIX)}:\{{b\d+\}}:(?:(?:live|seen):{escaped}:.+"
                        rf"|profiles:{escaped})", name, re.DOTALL) is not None
