"""Control groups: users who get no incentive, so what the offers add can be measured.

Membership is a salted hash of the user id, so it is the same on every call, in every
process and after restarts, with nothing stored. Each scope (the global group, each
journey's group) hashes its own name in, so the groups are independent of one another.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

GLOBAL = "global"
_SCALE = 2.0**64


@dataclass(frozen=True)
class Holdout:
    salt: str
    share: float = 0.0  # the global control group's share of users
    journey_shares: Mapping[str, float] = field(default_factory=dict)  # journey -> share

    def __post_init__(self) -> None:
        for scope, share in [(GLOBAL, self.share), *self.journey_shares.items()]:
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"holdout share {share} for {scope!r}: must be in [0, 1]")

    def group(self, user_id: str, journey: str | None) -> str | None:
        """The user's control group: "global", "journey:<name>", or None when not held out."""
        if self.share > 0 and self.position(GLOBAL, user_id) < self.share:
            return GLOBAL
        if journey is not None:
            share = self.journey_shares.get(journey, 0.0)
            if share > 0 and self.position(journey, user_id) < share:
                return f"journey:{journey}"
        return None

    def position(self, scope: str, user_id: str) -> float:
        """The user's uniform place in [0, 1) for `scope`; below the share means held out."""
        digest = hashlib.blake2b(f"{self.salt}:{scope}:{user_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / _SCALE
