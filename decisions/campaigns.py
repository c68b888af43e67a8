"""What a campaign gets: each user's decision remembered per (user, campaign), so every call
for one campaign (the decision, a batch, either block) answers with the same decision, and a
retried batch decides and counts nothing twice.

The first call decides and stores the decision's JSON, one field holding its expiry and the
JSON, by a script that keeps a live decision stored first (concurrent first calls agree on
one) and replaces one past its time; the hash expires when its decision does. The decision
is stored before it is logged, so of concurrent first calls only the one stored is logged
(the log is what off-policy evaluation reads: a decision nobody received has no place). A later call
finds it with the decision's own read (DecisionEngine.recall_or_decide_plan). Calls without
a campaign decide afresh. When Redis fails, the decision is answered, not remembered.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import orjson
import redis

from decisions import keys
from decisions.engine import DecisionEngine
from decisions.feedback import Feedback, FeedbackLog, UnknownDecision
from decisions.outcome import Decision, DecisionRequest
from nbo.redis_plan import LuaScript, Plan

DECISION, SHOWN = b"decision", b"shown"  # the stored hash's fields

# KEYS[1] the campaign's hash; ARGV: now, expiry, "<expiry>:<decision JSON>".
# The stored hash: this call's, or a live one stored first.
_KEEP = LuaScript("""
local stored = redis.call('HGET', KEYS[1], 'decision')
if stored then
    local expires = tonumber(string.match(stored, '^(%d+):'))
    if expires and expires > tonumber(ARGV[1]) then
        return redis.call('HGETALL', KEYS[1])
    end
    redis.call('DEL', KEYS[1])
end
redis.call('HSET', KEYS[1], 'decision', ARGV[3])
redis.call('EXPIREAT', KEYS[1], ARGV[2])
return redis.call('HGETALL', KEYS[1])
""")

# KEYS[1] the campaign's hash: mark its offer block shown, if the hash still exists (one
# just expired is not made again without an expiry).
_MARK_SHOWN = LuaScript("""
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSETNX', KEYS[1], 'shown', 1) end
return 1
""")

@dataclass(frozen=True)
class Answer:
    """A user's decision as answered."""

    body: bytes  # its JSON
    decided: Decision | None  # decided by this call; None when remembered from an earlier one
    ttl_s: int  # how much longer it is remembered (0: it is not)
    shown: bool  # the campaign's offer block was rendered (its offer counted as shown)


class CampaignDecisions:
    def __init__(self, engine: DecisionEngine, feedback: FeedbackLog, ttl_s: int) -> None:
        self._engine = engine
        self._feedback = feedback
        self._ttl_s = ttl_s

    def plan(self, requests: Sequence[DecisionRequest],
             now: datetime | None = None) -> Plan[list[Answer]]:
        """Each request's decision: the one remembered for its user and campaign, else a new
        one (remembered when the request names a campaign and Redis answers). A user asked
        twice for one campaign is decided (and logged) once; the copy answers the same."""
        recall = [keys.campaign_decision(r.user_id, r.campaign_id) if r.campaign_id else None
                  for r in requests]
        first: dict[str, int] = {}  # key -> the first request asking for it
        source = [user if key is None else first.setdefault(key, user)
                  for user, key in enumerate(recall)]
        distinct = [user for user, asked in enumerate(source) if asked == user]
        answered = yield from self._plan([requests[user] for user in distinct],
                                         [recall[user] for user in distinct], now)
        by_user = dict(zip(distinct, answered, strict=True))
        return [by_user[user] if asked == user
                else replace(by_user[asked], decided=None)  # decided, and counted, once
                for user, asked in enumerate(source)]

    def _plan(self, requests: Sequence[DecisionRequest], recall: Sequence[str | None],
              now: datetime | None) -> Plan[list[Answer]]:
        at = int(time.time())
        stored: dict[int, Answer] = {}  # id of a decision -> what its campaign remembers

        def keep(decisions: list[Decision]) -> Plan[list[bool]]:
            """Remember each campaign's new decision (a live one stored first by a
            concurrent call wins); the decisions that stand, which alone are logged."""
            kept = [d for d in decisions if d.campaign_id is not None and not d.degraded]
            bodies = [orjson.dumps(decision) for decision in kept]
            expires = at + self._ttl_s
            try:
                replies = (yield from _KEEP.call_many([
                    ([keys.campaign_decision(decision.user_id, decision.campaign_id or "")],
                     [at, expires, b"%d:%s" % (expires, body)])
                    for decision, body in zip(kept, bodies, strict=True)])) if kept else []
            except redis.RedisError:  # answered all the same, only not remembered
                self._engine.redis_failed()
                return [True] * len(decisions)
            for decision, body, fields in zip(kept, bodies, replies, strict=True):
                winner = _remembered(_pairs(fields), at)
                if winner is not None:  # this call's, or a concurrent first call's
                    stored[id(decision)] = replace(
                        winner, decided=decision if winner.body == body else None)
            return [id(d) not in stored or stored[id(d)].decided is d for d in decisions]

        outcomes = yield from self._engine.recall_or_decide_plan(
            requests, recall, now, remembered=lambda fields: _remembered(fields, at), keep=keep)
        return [outcome if not isinstance(outcome, Decision)
                else stored.get(id(outcome)) or Answer(orjson.dumps(outcome), outcome, 0, False)
                for outcome in outcomes]

    def shown_plan(self, user_id: str, campaign_id: str, decision_id: str,
                   offer_id: str) -> Plan[None]:
        """The campaign's offer block rendered for the first time: recorded as the
        impression of its offer (decisions/feedback.py), which counts it as shown to the
        user (max_per_user) once, however often the block is fetched and whether or not the
        sender also reports the impression, of the offer or of the whole decision. The
        block is marked shown once that is done, so a render that fails on the way is
        recorded by the next."""
        key = keys.campaign_decision(user_id, campaign_id)
        try:
            yield from self._feedback.record_plan(Feedback(
                decision_id, "impression", offer_id, datetime.now(UTC), None),
                for_the_whole=True)
        except UnknownDecision:  # its summary not written yet (the log follows the store),
            # or gone: the showing still counts, only unjoined
            yield from self._feedback.shown_once_plan(user_id, offer_id, key, SHOWN.decode())
            return
        yield from _MARK_SHOWN.call([key], [])


def _remembered(fields: Mapping[bytes, bytes], now: int) -> Answer | None:
    """The decision in a stored hash's fields; None for a hash `plan` did not write, or one
    past its time."""
    stored = fields.get(DECISION)
    expires, _, body = (stored or b"").partition(b":")
    if not body or not expires.isdigit() or int(expires) <= now:
        return None
    return Answer(body, None, int(expires) - now, SHOWN in fields)


def _pairs(reply: Sequence[bytes]) -> dict[bytes, bytes]:
    """An HGETALL reply returned by a script: a flat list of fields and values."""
    return dict(zip(reply[::2], reply[1::2], strict=True))
