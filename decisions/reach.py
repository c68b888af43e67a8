"""On which channels a user can be reached at all: consent, and the app for push/in-app."""

from __future__ import annotations

from collections.abc import Iterable

from features.contract.schema import Channel
from features.state import UserState

CONSENTED = frozenset({Channel.EMAIL, Channel.PUSH, Channel.SMS, Channel.WHATSAPP})
NEEDS_APP = frozenset({Channel.PUSH, Channel.IN_APP})


def reachable(state: UserState, allowed: Iterable[str]) -> frozenset[str]:
    """The allowed channels the user can be reached on: messaging channels need an explicit
    consent, push and in-app an app that is not known to be uninstalled; in-app and web
    need nothing, unless the user refused them (the users table's consent_in_app or
    consent_web false)."""
    found = set()
    for name in allowed:
        channel = Channel(name)
        if channel in CONSENTED and channel not in state.profile.consent:
            continue
        if channel in state.profile.refused:
            continue
        if channel in NEEDS_APP and state.session.app_installed is False:
            continue
        found.add(name)
    return frozenset(found)
