"""A user's live changes as flat hash fields: what a live event wrote since the cut-off.

Each field holds the current value of one part of the state (an anchored total, a tally,
a day's sends, the session), and replaces the published value of that part when read.
An event writes only the fields of the parts it changed (`changed_fields`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import TypeVar

import orjson

from features.activity import ActivitySpan
from features.purchases import PurchaseTally
from features.session import SessionContext
from features.state import UserState

SEQUENCE = "_seq"  # bumped by every applied event: the optimistic-concurrency check
ACTIVITY, PURCHASES, SESSION, LAST_CONTACT = "act", "pur", "ses", "lc"
CATEGORY_PURCHASES, COUNT, CONTACTS = "pur:", "c:", "k:"
K = TypeVar("K")
V = TypeVar("V")


def _time(ts: datetime | None) -> str:
    return "" if ts is None else repr(ts.timestamp())


def _parse_time(text: str) -> datetime | None:
    return datetime.fromtimestamp(float(text), UTC) if text else None


def _tally(tally: PurchaseTally) -> str:
    return "|".join((str(tally.lines), str(tally.occasions), str(tally.returns),
                     repr(tally.amount), _time(tally.first), _time(tally.last),
                     str(tally.price_lean)))


def _parse_tally(text: str) -> PurchaseTally:
    lines, occasions, returns, amount, first, last, *lean = text.split("|")  # no lean: older
    return PurchaseTally(int(lines), int(occasions), int(returns), float(amount),
                         _parse_time(first), _parse_time(last), int(lean[0]) if lean else 0)


def _session(session: SessionContext) -> str:
    return orjson.dumps([list(session.recent_categories), session.cart_value,
                         _time(session.cart_updated), _time(session.checkout_started),
                         session.app_installed, session.cart_lines,
                         session.cart_partial]).decode()


def _parse_session(text: str) -> SessionContext:
    recent, cart_value, cart_updated, checkout_started, app, *cart = orjson.loads(text)
    # written before the cart's lines were kept: none, and a cart with value partial
    lines, partial = cart if cart else ([], cart_value > 0)
    return SessionContext(recent_categories=tuple(recent), cart_value=cart_value,
                          cart_lines=tuple((category, items) for category, items in lines),
                          cart_partial=partial,
                          cart_updated=_parse_time(cart_updated),
                          checkout_started=_parse_time(checkout_started), app_installed=app)


def _activity(activity: ActivitySpan) -> str:
    return f"{_time(activity.first_seen)}|{_time(activity.last_seen)}|{activity.events}"


def _changed(before: Mapping[K, V], after: Mapping[K, V]) -> list[K]:
    """Keys whose value is new or another object (the definitions replace what they change)."""
    if before is after:
        return []
    return [key for key, value in after.items() if before.get(key) is not value]


def changed_fields(before: UserState, after: UserState) -> dict[str, str]:
    """The fields to write for `after`: the parts `UserState.apply` replaced."""
    fields: dict[str, str] = {}
    if after.activity != before.activity:
        fields[ACTIVITY] = _activity(after.activity)
    if after.purchases is not before.purchases:
        fields[PURCHASES] = _tally(after.purchases)
    if after.session is not before.session:
        fields[SESSION] = _session(after.session)
    if after.last_contact != before.last_contact:
        fields[LAST_CONTACT] = _time(after.last_contact)
    for category in _changed(before.category_purchases, after.category_purchases):
        fields[CATEGORY_PURCHASES + category] = _tally(after.category_purchases[category])
    for name in _changed(before.counts, after.counts):
        totals, old = after.counts[name], before.counts.get(name, {})
        fields.update({f"{COUNT}{name}:{key}": repr(totals[key])
                       for key in totals if old.get(key) != totals[key]})
    for channel, day in after.contacts:
        if before.contacts.get((channel, day)) != after.contacts[(channel, day)]:
            fields[f"{CONTACTS}{channel}:{day.isoformat()}"] = str(after.contacts[(channel, day)])
    return fields


def overlay(state: UserState, fields: Mapping[str, str]) -> UserState:
    """`state` (the published one) with the live fields read from the store on top."""
    if not fields:
        return state
    changes: dict[str, object] = {}
    category_purchases = dict(state.category_purchases)
    counts = {name: dict(totals) for name, totals in state.counts.items()}
    contacts = dict(state.contacts)
    for name, value in fields.items():
        if name == ACTIVITY:
            first, last, events = value.split("|")
            changes["activity"] = ActivitySpan(_parse_time(first), _parse_time(last), int(events))
        elif name == PURCHASES:
            changes["purchases"] = _parse_tally(value)
        elif name == SESSION:
            changes["session"] = _parse_session(value)
        elif name == LAST_CONTACT:
            changes["last_contact"] = _parse_time(value)
        elif name.startswith(CATEGORY_PURCHASES):
            category_purchases[name[len(CATEGORY_PURCHASES):]] = _parse_tally(value)
        elif name.startswith(COUNT):
            count, key = name[len(COUNT):].split(":", 1)
            counts.setdefault(count, {})[key] = float(value)
        elif name.startswith(CONTACTS):
            channel, day = name[len(CONTACTS):].split(":", 1)
            contacts[(channel, date.fromisoformat(day))] = int(value)
    return replace(state, category_purchases=category_purchases, counts=counts,
                   contacts=contacts, **changes)  # type: ignore[arg-type]
