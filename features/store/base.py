"""The online store's interface: every backend passes tests/features/store/test_store.py."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from features.event import Event
from features.pipeline import BatchFeatures
from features.state import UserState
from features.store.meta import VersionMeta


class Applied(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"  # an event id the user's current version has already seen


@dataclass(frozen=True)
class PublishReport:
    version: str
    users: int
    buckets: int
    seconds: float
    replayed: int  # live events after the cut-off carried over into the new version
    removed: tuple[str, ...]  # versions deleted (all but the new one and the one before)


class FeatureStore(Protocol):
    def publish(self, batch: BatchFeatures, version: str | None = None) -> PublishReport:
        """Load a whole user base as a new version, then switch readers to it."""

    def current(self) -> VersionMeta | None:
        """The version readers use, or None before the first publish or event."""

    def read(self, user_id: str) -> UserState | None:
        """Everything known about a user (None: never seen), in one round trip."""

    def read_many(self, user_ids: Sequence[str]) -> list[UserState | None]:
        """`read` for many users, in one round trip."""

    def apply(self, event: Event) -> Applied:
        """Apply one live event atomically and keep it in the event log."""

    def logged_events(self, after: str = "-", count: int = 10_000,
                      until: str = "+") -> list[tuple[str, Event]]:
        """Accepted live events after a log id ('-': from the oldest kept) up to `until`
        ('+': the newest), oldest first."""
