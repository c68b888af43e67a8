"""What the users table says about a user: sign-up, country, time zone, consent."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from features.contract.schema import Channel

REFUSABLE = (Channel.IN_APP, Channel.WEB)
"""Channels that need no consent (decisions/reach.py), which a user may still refuse."""


@dataclass(frozen=True)
class UserProfile:
    signup: datetime | None = None
    country: str | None = None
    timezone: str | None = None
    consent: frozenset[Channel] = field(default_factory=frozenset)  # explicit yes only
    refused: frozenset[Channel] = field(default_factory=frozenset)  # of REFUSABLE: explicit no

    @classmethod
    def from_row(cls, row: Mapping[str, object]) -> UserProfile:
        """From a row of the loaded users table."""
        signup = row.get("signup_ts")
        country, zone = row.get("country"), row.get("timezone")
        return cls(
            signup=signup if isinstance(signup, datetime) else None,
            country=country if isinstance(country, str) else None,
            timezone=zone if isinstance(zone, str) else None,
            consent=frozenset(c for c in Channel if row.get(f"consent_{c.value}") is True),
            refused=frozenset(c for c in REFUSABLE if row.get(f"consent_{c.value}") is False),
        )
