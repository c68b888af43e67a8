"""What happened after a decision (impressions, opens, clicks, conversions, redemptions),
joined to the decision's summary in Redis and appended to the feedback stream.

Each (decision, type, offer) is recorded once: a retried or repeated report is answered as
a duplicate and counts nothing again, so a client may resend after a timeout. What the user
was shown counts against the offers' `max_per_user`: an impression counts the offer it
names, else every offer of the decision. The first render of a campaign's offer block is
recorded as its offer's impression (decisions/campaigns.py), so a sender's own report of it
is a duplicate. A redemption spends its offer's cost from the budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import orjson
import redis

from decisions import keys
from decisions.catalog import OfferCatalog
from decisions.policy import Policy
from nbo.errors import DataContractError, NboError
from nbo.redis_plan import Command, LuaScript, Plan, Step

FeedbackType = Literal["impression", "open", "click", "conversion", "redemption"]
WHOLE = "*"  # a marker's offer for feedback about the decision as a whole


class UnknownDecision(NboError):
    http_status = 404


# KEYS[1] a decision's summary; ARGV: a time, then marker fields. -1 when the summary is gone
# (a marker alone would make a summary without a user or an expiry), else per marker 1 when
# this call set it, 0 when it was set before.
_MARK = LuaScript("""
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local marked = {}
for i = 2, #ARGV do marked[i - 1] = redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[1]) end
return marked
""")


@dataclass(frozen=True)
class Feedback:
    decision_id: str
    type: FeedbackType
    offer_id: str | None  # the offer it is about; None: the decision as a whole
    ts: datetime  # when it happened (aware)
    value: float | None  # an order's value, if any


@dataclass(frozen=True)
class Recorded:
    user_id: str
    duplicate: bool  # reported before: nothing was recorded or counted again


class FeedbackLog:
    def __init__(self, catalog: OfferCatalog, policy: Policy) -> None:
        self._catalog = catalog
        self._policy = policy

    def record_plan(self, feedback: Feedback) -> Plan[Recorded]:
        """Record `feedback` once (a plan: nbo.redis_plan); raises UnknownDecision for a
        decision that is not (or no longer) remembered, DataContractError for an offer the
        decision did not give."""
        key = keys.decision(feedback.decision_id)
        summary: dict[bytes, bytes] = (yield Step.one("HGETALL", key))[0]
        if b"user_id" not in summary:
            raise _unknown(feedback.decision_id)
        user_id = summary[b"user_id"].decode()
        offers: list[str] = orjson.loads(summary[b"offers"])
        if feedback.offer_id is not None and feedback.offer_id not in offers:
            raise DataContractError(f"offer {feedback.offer_id!r} was not part of decision "
                                    f"{feedback.decision_id!r} (it offered {offers})")
        spend: list[Command] = []
        if feedback.type == "redemption" and feedback.offer_id is not None:
            offer = (yield from self._catalog.snapshot_plan()).get(feedback.offer_id)
            if offer is not None:
                spend.append(OfferCatalog.spend_command(offer.offer_id, offer.cost))
        # an impression is marked per offer shown, so one naming an offer after one for the
        # whole decision (or the other way round) counts no offer twice
        about = ([feedback.offer_id] if feedback.offer_id is not None
                 else offers if feedback.type == "impression" and offers else [WHOLE])
        markers = {offer: f"seen:{feedback.type}:{offer}" for offer in about}
        marked = yield from _MARK.call([key], [feedback.ts.isoformat(), *markers.values()])
        if marked == -1:  # expired since it was read
            raise _unknown(feedback.decision_id)
        new = [offer for offer, first in zip(about, marked, strict=True) if first]
        if not new:
            return Recorded(user_id, duplicate=True)
        commands = [*self._commands(feedback, user_id, new), *spend]
        try:
            yield Step(commands)
        except redis.RedisError:
            try:  # so that the client's retry is recorded, not taken for a duplicate
                yield Step.one("HDEL", key, *(markers[offer] for offer in new))
            except redis.RedisError:
                pass
            raise
        return Recorded(user_id, duplicate=False)

    def shown_plan(self, user_id: str, offer_ids: Sequence[str]) -> Plan[None]:
        """Count offers shown to a user against their `max_per_user`, with no decision to
        join them to (its summary not written yet, or expired)."""
        yield Step(self._shown_commands(user_id, offer_ids))

    def _shown_commands(self, user_id: str, offer_ids: Sequence[str]) -> list[Command]:
        return OfferCatalog.given_commands([(user_id, offer_ids)], self._policy.given_ttl_s)

    def _commands(self, feedback: Feedback, user_id: str, new: list[str]) -> list[Command]:
        """The feedback stream's entry, and for an impression the offers it newly shows."""
        entry = {"decision_id": feedback.decision_id, "type": feedback.type,
                 "offer_id": feedback.offer_id, "ts": feedback.ts.isoformat(),
                 "value": feedback.value, "user_id": user_id}
        commands: list[Command] = [("XADD", keys.FEEDBACK, "MAXLEN", "~",
                                    self._policy.decision_log_max, "*", "f", orjson.dumps(entry))]
        if feedback.type == "impression":
            commands += self._shown_commands(user_id, [offer for offer in new if offer != WHOLE])
        return commands


def _unknown(decision_id: str) -> UnknownDecision:
    return UnknownDecision(f"decision {decision_id!r} is unknown or older than "
                           "NBO_OFFER_MEMORY_DAYS: send the decision_id a decision returned")
