"""What happened after a decision (impressions, opens, clicks, conversions, redemptions),
joined to the decision's summary in Redis and appended to the feedback stream.

Each (decision, type, offer) is recorded once: a retried or repeated report is answered as
a duplicate and counts nothing again, so a client may resend after a timeout. A report is
marked and recorded by one script, so a failure on the way leaves it either recorded whole
or not at all (then its retry records it). What the user
was shown counts against the offers' `max_per_user`: an impression counts the offer it
names, else every offer of the decision. The first render of a campaign's offer block is
recorded as its offer's impression (decisions/campaigns.py), so a sender's own report of it
is a duplicate. A redemption spends its offer's cost from the budget.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import orjson

from decisions import keys
from decisions.catalog import GIVE_FUNCTION, OfferCatalog
from decisions.policy import Policy
from nbo.errors import DataContractError, NboError
from nbo.redis_plan import LuaScript, Plan, Step

FeedbackType = Literal["impression", "open", "click", "conversion", "redemption"]


class UnknownDecision(NboError):
    http_status = 404


# KEYS: a decision's summary, the feedback stream, the user's given hash, the offers' spent
# hash. ARGV: the report's time, now (epoch s), how long a given count is kept (s), the
# stream's length, 1 when the report counts its offers as shown, the offer whose cost it
# spends ('' for none) and that cost, a marker set as well, reported or not ('' for none),
# a marker whose presence makes the report a duplicate ('' for none), then (marker, offer,
# stream entry) triples: offer '' for the decision as a whole. Each marker this call sets
# writes its entry. -1 when the summary is gone (a marker alone would make a summary
# without a user or an expiry), else how many of the triples' markers this call set: 0 for
# a duplicate, which records nothing.
_RECORD = LuaScript(GIVE_FUNCTION + """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if ARGV[8] ~= '' then redis.call('HSETNX', KEYS[1], ARGV[8], ARGV[1]) end
if ARGV[9] ~= '' and redis.call('HEXISTS', KEYS[1], ARGV[9]) == 1 then return 0 end
local new, shown = 0, {}
for i = 10, #ARGV, 3 do
    if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[1]) == 1 then
        new = new + 1
        redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'f', ARGV[i + 2])
        if ARGV[i + 1] ~= '' then
            shown[#shown + 1] = ARGV[i + 1]
            shown[#shown + 1] = 1
        end
    end
end
if new == 0 then return 0 end
if ARGV[5] == '1' and #shown > 0 then
    give(KEYS[3], tonumber(ARGV[2]), tonumber(ARGV[3]), shown, 1)
end
if ARGV[6] ~= '' then redis.call('HINCRBYFLOAT', KEYS[4], ARGV[6], ARGV[7]) end
return new
""")


# KEYS: a hash that must exist, the user's given hash; ARGV: a field of the first, now
# (epoch s), how long a given count is kept (s), the offer. Sets the field and, when this
# call set it, counts the offer as given: both or neither. 1 when counted.
_SHOWN_ONCE = LuaScript(GIVE_FUNCTION + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HSETNX', KEYS[1], ARGV[1], 1) == 0 then return 0 end
give(KEYS[2], tonumber(ARGV[2]), tonumber(ARGV[3]), {ARGV[4], 1}, 1)
return 1
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

    def record_plan(self, feedback: Feedback, for_the_whole: bool = False) -> Plan[Recorded]:
        """Record `feedback` once (a plan: nbo.redis_plan); raises UnknownDecision for a
        decision that is not (or no longer) remembered, DataContractError for an offer the
        decision did not give. `for_the_whole`: the report about one offer also stands for
        the decision as a whole (a campaign's offer block, all its user is sent of it), so
        a later report of the same type about the whole decision is a duplicate."""
        key = keys.decision(feedback.decision_id)
        summary: dict[bytes, bytes] = (yield Step.one("HGETALL", key))[0]
        if b"user_id" not in summary:
            raise _unknown(feedback.decision_id)
        user_id = summary[b"user_id"].decode()
        offers: list[str] = orjson.loads(summary[b"offers"])
        if feedback.offer_id is not None and feedback.offer_id not in offers:
            raise DataContractError(f"offer {feedback.offer_id!r} was not part of decision "
                                    f"{feedback.decision_id!r} (it offered {offers})")
        spend: tuple[str, float] = ("", 0.0)
        if feedback.type == "redemption" and feedback.offer_id is not None:
            offer = (yield from self._catalog.snapshot_plan()).get(feedback.offer_id)
            if offer is not None:
                spend = (offer.offer_id, offer.cost)
        # an impression is marked (and its entry written) per offer shown, so one naming an
        # offer after one for the whole decision (or the other way round) counts no offer
        # twice, in the user's counts or in the stream
        about = ([feedback.offer_id] if feedback.offer_id is not None
                 else offers if feedback.type == "impression" and offers else [None])
        # the whole decision's marker was `seen:{type}:*` before it moved (an offer may be
        # named *): in a decision that gave no offer named *, that one still marks a report
        if about == [None] and "*" not in offers and _marker(
                feedback.type, "*").encode() in summary:
            return Recorded(user_id, duplicate=True)
        entry = {"decision_id": feedback.decision_id, "type": feedback.type,
                 "ts": feedback.ts.isoformat(), "value": feedback.value, "user_id": user_id}
        recorded = yield from _RECORD.call(
            [key, keys.FEEDBACK, keys.given(user_id), keys.SPENT],
            [feedback.ts.isoformat(), int(time.time()), self._policy.given_ttl_s,
             self._policy.decision_log_max, int(feedback.type == "impression"), *spend,
             _marker(feedback.type, None) if for_the_whole else "",
             # a report of the whole decision after one that stood for it (a campaign's
             # offer block: `for_the_whole`) is a duplicate
             _marker(feedback.type, None) if feedback.offer_id is None else "",
             *(part for offer in about
               for part in (_marker(feedback.type, offer), offer or "",
                            orjson.dumps(entry | {"offer_id": offer})))])
        if recorded == -1:  # expired since it was read
            raise _unknown(feedback.decision_id)
        return Recorded(user_id, duplicate=recorded == 0)


    def shown_once_plan(self, user_id: str, offer_id: str, key: str, field: str) -> Plan[None]:
        """Count an offer as shown to a user (max_per_user) with no decision to join it to
        (its summary not written yet, or expired), once: when this call sets `field` of
        the existing hash at `key`, which happens with the count or not at all."""
        yield from _SHOWN_ONCE.call([key, keys.given(user_id)],
                                    [field, int(time.time()), self._policy.given_ttl_s, offer_id])


def _marker(kind: FeedbackType, offer_id: str | None) -> str:
    """The summary's field marking a report of this type about the offer (None: about the
    decision as a whole, a field no offer id can spell)."""
    return f"seen:{kind}" if offer_id is None else f"seen:{kind}:{offer_id}"


def _unknown(decision_id: str) -> UnknownDecision:
    return UnknownDecision(f"decision {decision_id!r} is unknown or older than "
                           "NBO_OFFER_MEMORY_DAYS: send the decision_id a decision returned "
                           "(one answered with degraded: true is known once Redis is back, "
                           "within NBO_REDIS_RETRY_AFTER_S: retry it then)")
