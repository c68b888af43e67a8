"""What a campaign gets: each user's decision remembered per (user, campaign), so every call
for one campaign (the decision, a batch, either block) answers with the same decision, and a
retried batch decides and counts nothing twice.

The first call decides and stores the decision's JSON with HSETNX, one field holding its
expiry and the JSON, so concurrent first calls still agree on one decision (the losers'
are dropped); the hash expires after `ttl_s`. A later call finds it with the decision's own
read (DecisionEngine.recall_or_decide_plan). Calls without a campaign decide afresh.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import orjson

from decisions import keys
from decisions.engine import DecisionEngine, Recalled
from decisions.feedback import FeedbackLog
from decisions.outcome import Decision, DecisionRequest
from nbo.redis_plan import Command, Plan, Step

DECISION, SHOWN = b"decision", b"shown"  # the stored hash's fields


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
        one (remembered when the request names a campaign and Redis answered)."""
        recall = [keys.campaign_decision(r.user_id, r.campaign_id) if r.campaign_id else None
                  for r in requests]
        outcomes = yield from self._engine.recall_or_decide_plan(requests, recall, now)
        at = int(time.time())
        answers: list[Answer | None] = [
            _remembered(outcome.fields, at) if isinstance(outcome, Recalled) else None
            for outcome in outcomes]
        kept: dict[int, int] = {}  # user -> the position of their stored hash's reply
        commands: list[Command] = []
        for user, (outcome, key) in enumerate(zip(outcomes, recall, strict=True)):
            if answers[user] is not None:
                continue
            decision = (outcome if isinstance(outcome, Decision)  # else a hash past its time
                        else (yield from self._engine.decide_plan([requests[user]], now))[0])
            body = orjson.dumps(decision)
            answers[user] = Answer(body, decision, 0, False)
            if key is None or decision.degraded:
                continue
            if isinstance(outcome, Recalled):
                commands.append(("DEL", key))  # past its time: this decision replaces it
            commands += [("HSETNX", key, DECISION, b"%d:%s" % (at + self._ttl_s, body)),
                         ("EXPIRE", key, self._ttl_s), ("HGETALL", key)]
            kept[user] = len(commands) - 1
        if commands:
            replies = yield Step(commands)
            for user, position in kept.items():
                answer = answers[user]
                assert answer is not None
                winner = _remembered(replies[position], at)  # this call's, or a concurrent one's
                if winner is not None:
                    ours = winner.body == answer.body
                    answers[user] = replace(winner, decided=answer.decided if ours else None)
        return [answer for answer in answers if answer is not None]

    def shown_plan(self, user_id: str, campaign_id: str, offer_id: str) -> Plan[None]:
        """The campaign's offer block rendered for the first time: its offer counts as shown
        to the user (max_per_user), once however often the block is fetched."""
        key = keys.campaign_decision(user_id, campaign_id)
        if (yield Step.one("HSETNX", key, SHOWN, 1))[0]:
            yield from self._feedback.shown_plan(user_id, [offer_id])


def _remembered(fields: Mapping[bytes, bytes], now: int) -> Answer | None:
    """The decision in a stored hash's fields; None for a hash `plan` did not write, or one
    past its time."""
    stored = fields.get(DECISION)
    expires, _, body = (stored or b"").partition(b":")
    if not body or not expires.isdigit() or int(expires) <= now:
        return None
    return Answer(body, None, int(expires) - now, SHOWN in fields)
