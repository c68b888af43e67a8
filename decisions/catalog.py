"""The offer catalog in Redis, with a cheap in-process snapshot, budgets and per-user counts.

Offers are JSON in one hash with a version counter beside it: every write bumps the
version in the same transaction, so a reader polls one small key and re-reads the hash
only when it changed. Spend and choice counters live in their own hashes, so a decision
reads every candidate's budget in one round trip.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from time import monotonic, time

import numpy as np
import redis
from pydantic import ValidationError
from redis.typing import EncodableT

from decisions import keys
from features.contract.offers import Offer, read_offers
from features.contract.problems import FileCheck
from nbo.errors import DataContractError
from nbo.redis_plan import Command, Plan, Step, execute, run

logger = logging.getLogger(__name__)

STAMP = "/stamp"
"""A field of the catalog's hash no offer id can be (ids hold no `/`): a random value every
write sets, so a catalog evicted, or restored from an older copy, is told from the one a
process holds even when its version number is the same."""

# HDEL, a new stamp and INCR together, but only when the offer existed: a no-op is not a
# write.
_DELETE = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
    redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
    return redis.call('INCR', KEYS[2])
end
return false
"""


@dataclass(frozen=True)
class BudgetStatus:
    """An offer's budget against what was spent on it, and how often it was chosen."""

    budget: float | None
    spent: float
    remaining: float | None
    exhausted: bool
    chosen: int


@dataclass(frozen=True)
class CatalogSnapshot:
    """The catalog as of one version; immutable, so it can be shared between requests."""

    version: int
    offers: tuple[Offer, ...]  # sorted by offer_id
    stamp: bytes | None = None  # the catalog's STAMP (None: none written)
    fields: int = 0  # of the catalog's hash as read (its stamp, any offer skipped included)
    _by_id: dict[str, Offer] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {offer.offer_id: offer for offer in self.offers})

    def get(self, offer_id: str) -> Offer | None:
        return self._by_id.get(offer_id)


def _text(raw: object) -> str:
    """A Redis string reply as text, whether the client decodes responses or not."""
    if isinstance(raw, bytes):
        return raw.decode()
    if isinstance(raw, str):
        return raw
    raise TypeError(f"expected a Redis string reply, got {type(raw).__name__}")


def _int(raw: object) -> int:
    """An integer reply or stored counter; a missing one counts as 0."""
    if raw is None:
        return 0
    if isinstance(raw, int):
        return raw
    return int(_text(raw))


def _float(raw: object) -> float:
    """A float counter (HINCRBYFLOAT); a missing one counts as 0."""
    if raw is None:
        return 0.0
    if isinstance(raw, int | float):
        return float(raw)
    return float(_text(raw))


def _list(raw: object) -> list[object]:
    if not isinstance(raw, list):
        raise TypeError(f"expected a Redis array reply, got {type(raw).__name__}")
    return raw


def _hash(raw: object) -> dict[object, object]:
    if not isinstance(raw, dict):
        raise TypeError(f"expected a Redis hash reply, got {type(raw).__name__}")
    return raw


BUDGET_SLACK = 1e-9
"""The share of a budget that sums of decimal amounts may overshoot it by, rounding alone
(2.2 + 1.1 > 3.3 in floating point): within it, the budget still pays; never by half a
redemption or more, which no rounding explains (a large budget's share would let cheap
redemptions through once it is spent)."""


def pays_one_more(spent: float | np.ndarray, cost: float | np.ndarray,
                  budget: float | np.ndarray) -> np.ndarray:
    """Whether what is left of `budget` after `spent` pays one more redemption at `cost`
    (numbers, or arrays of them; an infinite budget for none)."""
    slack = np.minimum(BUDGET_SLACK * np.maximum(budget, 1.0), 0.5 * np.asarray(cost))
    return np.asarray(spent + cost <= budget + slack)


def _new_stamp() -> str:
    return uuid.uuid4().hex


def _status(budget: float | None, cost: float, spent: float, chosen: int) -> BudgetStatus:
    """Exhausted once what is left cannot pay for one more redemption (as decisions
    read it: decisions/candidates.py)."""
    remaining = None if budget is None else max(round(budget - spent, 9), 0.0)
    exhausted = budget is not None and not pays_one_more(spent, cost, budget).item()
    return BudgetStatus(budget, spent, remaining, exhausted, chosen)


class OfferCatalog:
    """Reads and writes the offer catalog and its counters; one per process is enough."""

    def __init__(self, client: redis.Redis, refresh_s: float = 1.0) -> None:
        self._client = client
        self._refresh_s = refresh_s
        self._delete = client.register_script(_DELETE)
        # (snapshot, when its version was last confirmed); swapped as one tuple so a
        # concurrent reader never pairs a snapshot with another one's check time
        self._cached: tuple[CatalogSnapshot, float] | None = None

    # writes

    def put(self, offer: Offer) -> int:
        """Insert or replace one offer; returns the new catalog version."""
        pipe = self._client.pipeline(transaction=True)
        pipe.hset(keys.CATALOG, mapping={offer.offer_id: offer.model_dump_json(),
                                         STAMP: _new_stamp()})
        pipe.incr(keys.CATALOG_VERSION)
        version = _int(_list(pipe.execute())[-1])
        self._invalidate()
        return version

    def delete(self, offer_id: str) -> int | None:
        """Remove an offer; the new version, or None (and no version bump) if it was absent."""
        reply: object = self._delete(keys=[keys.CATALOG, keys.CATALOG_VERSION],
                                     args=[offer_id, STAMP, _new_stamp()])
        self._invalidate()
        return None if reply is None else _int(reply)

    def replace_all(self, offers: Sequence[Offer]) -> int:
        """Swap the whole catalog in one transaction (`nbo publish`); returns the new version.

        Readers see the old catalog or the new one, never a mix.
        """
        entries: dict[EncodableT, EncodableT] = {}
        for offer in offers:
            if offer.offer_id in entries:
                raise DataContractError(f"offer_id {offer.offer_id!r} is given more than once; "
                                        "keep one definition per offer and publish again")
            entries[offer.offer_id] = offer.model_dump_json()
        pipe = self._client.pipeline(transaction=True)
        pipe.delete(keys.CATALOG)
        pipe.hset(keys.CATALOG, mapping={**entries, STAMP: _new_stamp()})
        pipe.incr(keys.CATALOG_VERSION)
        version = _int(_list(pipe.execute())[-1])
        self._invalidate()
        return version

    # reads

    def snapshot(self) -> CatalogSnapshot:
        return run(self._client, self.snapshot_plan())

    def snapshot_plan(self) -> Plan[CatalogSnapshot]:
        """The current catalog, asking Redis whether it changed at most every refresh_s (its
        version, stamp and size: any tells a catalog rewritten, evicted or restored, the
        size one written before stamps were)."""
        cached = self._cached
        now = monotonic()
        if cached is not None:
            snapshot, checked_at = cached
            if now - checked_at < self._refresh_s:
                return snapshot
            version, stamp, fields = yield Step([("GET", keys.CATALOG_VERSION),
                                                 ("HGET", keys.CATALOG, STAMP),
                                                 ("HLEN", keys.CATALOG)])
            if (_int(version), stamp, fields) == (snapshot.version, snapshot.stamp,
                                                  snapshot.fields):
                self._cached = (snapshot, now)
                return snapshot
        # version and offers from one transaction, so they always belong together
        raw_version, raw_offers = yield Step([("GET", keys.CATALOG_VERSION),
                                              ("HGETALL", keys.CATALOG)], transaction=True)
        snapshot = self._parse(raw_version, raw_offers)
        self._cached = (snapshot, now)
        return snapshot

    @staticmethod
    def _parse(raw_version: object, raw_offers: object) -> CatalogSnapshot:
        version = _int(raw_version)
        offers: list[Offer] = []
        fields = _hash(raw_offers)
        count = len(fields)
        stamp = fields.pop(STAMP.encode(), None)
        for raw_id, raw_json in fields.items():
            offer_id = _text(raw_id)
            try:
                offer = Offer.model_validate_json(_text(raw_json))
            except (ValidationError, UnicodeDecodeError) as error:
                logger.warning("offer %r in %s (version %d) skipped, it is not a valid offer: %s",
                               offer_id, keys.CATALOG, version, " ".join(str(error).split()))
                continue
            if offer.offer_id != offer_id:
                logger.warning("offer %r in %s (version %d) skipped, its JSON says offer_id %r",
                               offer_id, keys.CATALOG, version, offer.offer_id)
                continue
            offers.append(offer)
        offers.sort(key=lambda offer: offer.offer_id)
        return CatalogSnapshot(version, tuple(offers),
                               stamp if isinstance(stamp, bytes) else None, count)

    def _invalidate(self) -> None:
        """Make this process's next snapshot() check Redis, so it sees its own writes."""
        cached = self._cached
        if cached is not None:
            self._cached = (cached[0], -math.inf)

    # budgets and counts

    def budgets(self, offer_ids: Sequence[str] | None = None) -> dict[str, BudgetStatus]:
        """Budget, spend and choice count per offer (default: every offer in the catalog).

        One round trip for the counters; budgets come from the snapshot. An id missing
        from the catalog gets budget None.
        """
        snapshot = self.snapshot()
        ids = [offer.offer_id for offer in snapshot.offers] if offer_ids is None else list(
            dict.fromkeys(offer_ids))
        return self.statuses({offer_id: snapshot.get(offer_id) for offer_id in ids})

    def statuses(self, offers: Mapping[str, Offer | None]) -> dict[str, BudgetStatus]:
        """The budget status of each offer as given (offer id -> the offer, None for one
        not in the catalog: no budget), whatever version of it is stored by now; its
        counters read in one round trip."""
        ids = list(offers)
        if not ids:
            return {}
        pipe = self._client.pipeline(transaction=False)
        pipe.hmget(keys.SPENT, ids)
        pipe.hmget(keys.CHOSEN, ids)
        spent_raw, chosen_raw = (_list(reply) for reply in _list(pipe.execute()))
        statuses: dict[str, BudgetStatus] = {}
        for offer_id, spent, chosen in zip(ids, spent_raw, chosen_raw, strict=True):
            offer = offers[offer_id]
            budget, cost = (None, 0.0) if offer is None else (offer.budget, offer.cost)
            statuses[offer_id] = _status(budget, cost, _float(spent), _int(chosen))
        return statuses

    def record_spend(self, offer_id: str, cost: float) -> float:
        """Add cost to what the offer has spent; returns the new total."""
        return float(execute(self._client, Step([self.spend_command(offer_id, cost)]))[0])

    @staticmethod
    def spend_command(offer_id: str, cost: float) -> Command:
        """The command adding `cost` to what the offer has spent, for a caller's pipeline."""
        if not math.isfinite(cost):
            raise ValueError(f"cost must be a finite number, got {cost!r}")
        return ("HINCRBYFLOAT", keys.SPENT, offer_id, cost)

    @staticmethod
    def given_commands(given: Iterable[tuple[str, Sequence[str]]], ttl_s: int,
                       now: float | None = None) -> list[Command]:
        """The commands counting offers shown to users, (user id, offer ids) pairs, for a
        caller's pipeline (one script call a user, sent whole so that a pipeline never
        meets NOSCRIPT). Each offer's count, which `max_per_user` caps, is forgotten `ttl_s`
        after that offer was last shown, whatever other offers are shown since."""
        if ttl_s <= 0:
            raise ValueError(f"ttl_s must be positive, got {ttl_s}")
        at = int(time() if now is None else now)
        per_user: dict[str, Counter[str]] = {}
        for user_id, offer_ids in given:
            if offer_ids:
                per_user.setdefault(user_id, Counter()).update(offer_ids)
        return [("EVAL", _GIVE, 1, keys.given(user_id), at, ttl_s,
                 *(part for offer_id, count in counts.items() for part in (offer_id, count)))
                for user_id, counts in per_user.items()]

    @staticmethod
    def parse_given(raw: Mapping[bytes, bytes] | Mapping[bytes | str, bytes | str],
                    ttl_s: int, now: float | None = None) -> dict[str, int]:
        """An HGETALL reply of keys.given(user) as offer_id -> times given, leaving out the
        offers last shown `ttl_s` or longer ago (`given_commands`). A count kept before
        counts carried their time counts until the next show dates it (or its hash expires).

        Typed like redis-py's HGETALL, so a reply (bytes, or str when decoding) passes as is.
        """
        oldest = (time() if now is None else now) - ttl_s
        given: dict[str, int] = {}
        for offer_id, stored in raw.items():
            times, _, shown = _text(stored).partition(":")
            if not shown or int(shown) > oldest:
                given[_text(offer_id)] = _int(times)
        return given


# Lua: count offers shown to a user in their given hash `key` at `now` (epoch s), each
# (offer id, times shown) pair of `shown` from its `first` item on. Each field holds
# "<times>:<epoch s last shown>"; a count older than `keep` seconds starts again from 0. The
# hash outlives its latest count. A count kept before counts carried their time is dated
# now, so that it expires too. Scripts that count shows (here and decisions/feedback.py)
# start with it.
GIVE_FUNCTION = """
local function give(key, now, keep, shown, first)
    local fields = redis.call('HGETALL', key)
    for i = 1, #fields, 2 do
        if not string.find(fields[i + 1], ':', 1, true) then
            redis.call('HSET', key, fields[i], fields[i + 1] .. ':' .. now)
        end
    end
    for i = first, #shown, 2 do
        local times, at = string.match(redis.call('HGET', key, shown[i]) or '', '^(%d*):?(%d*)$')
        times = tonumber(times) or 0
        if tonumber(at) and tonumber(at) + keep <= now then times = 0 end
        redis.call('HSET', key, shown[i], (times + tonumber(shown[i + 1])) .. ':' .. now)
    end
    redis.call('EXPIRE', key, keep)
end
"""

# KEYS[1] a user's given hash; ARGV: now, how long a count is kept (s), then (offer id,
# times shown) pairs.
_GIVE = GIVE_FUNCTION + """
give(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV, 3)
return 1
"""


def offers_to_publish(path: Path) -> tuple[list[Offer], FileCheck]:
    """The file's valid offers, to replace the catalog with; the check lists the invalid
    ones. A file from which no offer could be read while it has problems (unreadable, or
    every offer invalid) is refused rather than emptying the live catalog."""
    offers, check = read_offers(path)
    if not offers and not check.ok:
        shown = "; ".join(str(problem) for problem in check.shown[:3])
        raise DataContractError(f"{path}: no valid offer to publish, the catalog is left as it "
                                f"was ({check.problem_count} problem(s): {shown})")
    return offers, check
