"""Every Redis key the decision side uses, built in one place.

The catalog, budget counters and logs are shared by all users and sit under
`nbo:v1:offers:*` and `nbo:v1:*`. A user's own decision keys carry a hash tag of CRC-32 of
the user id modulo 1024 (`{u17}`), so in a Redis Cluster one decision's per-user reads and
writes stay on one slot.
"""

from __future__ import annotations

import zlib

from features.store.keys import PREFIX

USER_SLOTS = 1024  # hash-tag buckets of the per-user keys; a change needs a migration

CATALOG = f"{PREFIX}:offers:catalog"
"""Hash offer_id -> offer JSON (`Offer.model_dump_json()`)."""

CATALOG_VERSION = f"{PREFIX}:offers:version"
"""Integer incremented on every catalog write, so readers know when to re-read."""

SPENT = f"{PREFIX}:offers:spent"
"""Hash offer_id -> cost spent so far (a float, HINCRBYFLOAT)."""

CHOSEN = f"{PREFIX}:offers:chosen"
"""Hash offer_id -> times the offer was chosen by a decision."""

DECISIONS = f"{PREFIX}:decisions"
"""Stream of decision log entries (for feedback joins and off-policy evaluation)."""

FEEDBACK = f"{PREFIX}:feedback"
"""Stream of feedback entries: impressions, opens, clicks, conversions."""


def user_tag(user_id: str) -> str:
    """The prefix and hash tag all of a user's decision keys share (one Cluster slot)."""
    return f"{PREFIX}:{{u{zlib.crc32(user_id.encode()) % USER_SLOTS}}}"


def given(user_id: str) -> str:
    """Hash offer_id -> "<times shown to this user>:<epoch s last shown>" (max_per_user;
    decisions/catalog.py, `given_commands`)."""
    return f"{user_tag(user_id)}:given:{user_id}"


def campaign_decision(user_id: str, campaign_id: str) -> str:
    """Hash remembering the decision a campaign got for this user (decisions/campaigns.py):
    every call for the campaign answers it, and its blocks render it. A campaign id with a
    `:` in it goes after its length, behind `campaign#` (which no other key of this kind
    starts with), so no pair of ids spells another pair's key; other ids keep the key
    they always had."""
    if ":" in campaign_id:
        return f"{user_tag(user_id)}:campaign#{len(campaign_id)}:{campaign_id}:{user_id}"
    return f"{user_tag(user_id)}:campaign:{campaign_id}:{user_id}"


def decision(decision_id: str) -> str:
    """Hash summarising one decision, read when its feedback arrives."""
    return f"{PREFIX}:decision:{decision_id}"
