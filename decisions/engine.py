"""The whole next-best decision for one or many users (docs/api.md, "The decision").

Per call: one Redis round trip reads every user's features with their per-offer counts
and the budgets spent; then in process, each stage over every user before the next:
lifecycle stage, holdout group, reachable channels and contact budget; send hours (one
computation for all users) and channel scores; the eligible offers (every rule for every
user at once, candidates.py); one call of the offer model per 32 users (compiled, or
its ONNX graph) scoring them with each user's no-offer arm (so uplift comes with it),
expected values and exploration; categories and brands (one call of each ranker for all
users) and the hours each category is shopped; items and the answer.
Finally one pipelined write logs the decisions and counts the offers given. The Redis work
is written as plans (nbo/redis_plan.py): `decide_many` runs them with the blocking client,
the API with its event loop's connection (`decide_plan`).

When Redis cannot be reached, answers come from the in-process catalog and models as
for an unknown user, flagged `degraded`, on in-app and web only (the contact counts are
in Redis), and without offers that have a budget or a `max_per_user` (what was spent and
given is in Redis too); Redis is not asked again for `retry_after_s`, so an outage does not add a
timeout to every request, and answers recover by themselves once it is back. Their log
entries wait in process and go with the first log written after.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from itertools import accumulate
from typing import Protocol, TypeVar

import numpy as np
import orjson
import redis

from decisions import keys
from decisions.candidates import CandidateTable, UserFacts, of_user, removed_by
from decisions.catalog import CatalogSnapshot, OfferCatalog
from decisions.contact_policy import INTERRUPTING, ContactBudget, ContactPolicy
from decisions.journeys import as_the_journey_tells, journey_categories
from decisions.outcome import (
    ChannelScore,
    ChosenOffer,
    ContactBudgetView,
    Decision,
    DecisionRequest,
    Source,
)
from decisions.policy import Policy
from decisions.reach import reachable
from features.contract.schema import Channel
from features.local_time import user_zone
from features.price_bands import BANDS
from features.state import UserState
from features.store.meta import VersionMeta
from features.store.redis_store import Extra, RedisFeatureStore
from models.items import USER_BRANDS, USER_CATEGORIES
from models.offer_response import (
    drivers,
    expected_value,
    offer_rows_of,
    shared_columns,
    worth_offering,
)
from models.serving import ServingModels
from nbo.redis_plan import LuaScript, Plan, run, timed

T = TypeVar("T")
Keep = Callable[[list[Decision]], Plan[list[bool]]]
"""Stores new decisions before they are logged; says which of them stand."""
CHANNELS = tuple(channel.value for channel in Channel)
UNSCHEDULED = ("in_app", "web")  # shown at the user's next visit
DEFAULT_SEND_HOUR = 10
UNLOGGED_CALLS = 10_000  # calls decided during an outage kept to log after (older dropped)
# KEYS: the decision's summary, the decision log, the offers' chosen counts. ARGV: the log's
# length, the summary's time to live (s), the log entry, the user, the offers chosen (JSON)
# and the time, then each offer chosen. Logs the decision unless its summary exists: a
# write that failed (a timeout) may have been applied, and is sent again.
_LOG_ONCE = LuaScript("""
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'd', ARGV[3])
redis.call('HSET', KEYS[1], 'user_id', ARGV[4], 'offers', ARGV[5], 'ts', ARGV[6])
redis.call('EXPIRE', KEYS[1], ARGV[2])
for i = 7, #ARGV do redis.call('HINCRBY', KEYS[3], ARGV[i], 1) end
return 1
""")
# users whose candidate offers one call of the offer model scores: rows of a few dozen
# users stay in the CPU's caches (about 9 us a user cheaper than a call per user)
OFFER_USERS_PER_CALL = 32


class Observer(Protocol):
    """Where the engine reports what the API exports as metrics."""

    def stage(self, name: str, seconds: float) -> None: ...

    def redis_error(self) -> None: ...


class _Silent:
    def stage(self, name: str, seconds: float) -> None:
        pass

    def redis_error(self) -> None:
        pass


@dataclass(frozen=True)
class _Read:
    meta: VersionMeta | None
    states: list[UserState | None]
    given: list[dict[str, int]]
    spent: dict[str, float]
    degraded: bool
    recalled: list[dict[bytes, bytes]]  # per user: the hash asked for with the read, empty
    # when not stored (or not asked for)

    @classmethod
    def unreachable(cls, users: int) -> _Read:
        """What is known of `users` users while Redis cannot be reached: nothing."""
        return cls(None, [None] * users, [{} for _ in range(users)], {}, True,
                   [{} for _ in range(users)])

    def of(self, users: Sequence[int]) -> _Read:
        """The read of these users only (by position)."""
        return replace(self, states=[self.states[u] for u in users],
                       given=[self.given[u] for u in users],
                       recalled=[self.recalled[u] for u in users])


@dataclass(frozen=True)
class _Call:
    """What every decision of one call shares: one model version throughout, even if a
    reload swaps it meanwhile."""

    now: datetime
    read: _Read
    table: CandidateTable
    catalog_version: int | None
    models: ServingModels | None


@dataclass(frozen=True)
class _Subject:
    """A user asked about, with the facts each later stage of their decision reads."""

    request: DecisionRequest
    state: UserState
    source: Source
    stage: str  # lifecycle stage
    group: str | None  # holdout group
    allowed: list[str]  # the channels asked for (when degraded, only in-app and web)
    reach: frozenset[str]  # those the user can be reached on
    budget: ContactBudget | None  # None when degraded
    given: dict[str, int]  # offer id -> times given to the user


@dataclass(frozen=True)
class _Reach:
    """The user's channels, best first, and when a message would reach them."""

    channels: list[ChannelScore]
    best: ChannelScore | None  # the best allowed channel
    context: ChannelScore | None  # the channel offers are scored for: the best, else the
    # best reaching the user, else the first
    local: datetime  # when a message on it would reach them, in their time zone


@dataclass(frozen=True)
class _Offers:
    """A user's offers chosen, the arbitration's terms (when explained) and what the log
    keeps of the candidates."""

    chosen: list[ChosenOffer]
    terms: dict[str, object]
    eligible: int  # offers every rule allowed
    candidates: list[tuple[str, float]] = field(default_factory=list)  # worthwhile, best first
    channel: str | None = None  # the channel they were scored for (None: none scored)


@dataclass(frozen=True)
class _Logged:
    """What the log keeps of one decision: its entry in the decision log and its summary
    (keys.decision), which feedback joins."""

    decision_id: str
    user_id: str
    entry: bytes  # JSON
    chosen: list[str]  # the offers chosen, best first
    ts: str


@dataclass(frozen=True)
class _Pool:
    """The offers every rule allows the user, and how well each fits them."""

    eligible: np.ndarray  # rows of the candidate table
    fit: np.ndarray  # their rows of OfferMatrix.fit
    verdicts: dict[str, np.ndarray]  # rule -> (offers,) bool; only when asked to `explain`


class DecisionEngine:
    def __init__(self, client: redis.Redis, store: RedisFeatureStore, catalog: OfferCatalog,
                 policy: Policy, models: ServingModels | None = None,
                 retry_after_s: float = 1.0, observer: Observer | None = None) -> None:
        self.models = models  # swapped whole by a reload: one attribute write
        self._client = client
        self._store = store
        self._catalog = catalog
        self._policy = policy
        self._retry_after_s = retry_after_s
        self._observer = observer or _Silent()
        self._down_until = 0.0
        self._rng = np.random.default_rng()  # thread-safe: its bit generator has a lock
        self._contacts = policy.contacts
        # the catalog last read (None: none yet) and its rules as arrays
        self._table: tuple[CatalogSnapshot | None, CandidateTable] = (None,
                                                                       CandidateTable.of(()))
        # the logs of calls decided while Redis was down, or whose write failed, oldest first
        self._unlogged: deque[list[_Logged]] = deque(maxlen=UNLOGGED_CALLS)

    # -- reading ----------------------------------------------------------------------

    def _timed(self, stage: str, plan: Plan[T]) -> Plan[T]:
        """`plan`, its computing observed as `stage` and its waits for Redis replies as
        `redis_wait` (on the event loop, other requests' turns meanwhile included)."""
        def observe(computing: float, waiting: float) -> None:
            self._observer.stage(stage, computing)
            if waiting:
                self._observer.stage("redis_wait", waiting)

        return timed(plan, observe)

    def redis_failed(self) -> None:
        """Redis failed a request: count it, and leave Redis alone for `retry_after_s`."""
        self._observer.redis_error()
        self._down_until = time.monotonic() + self._retry_after_s

    @property
    def redis_down(self) -> bool:
        return time.monotonic() < self._down_until

    def candidates(self) -> Plan[tuple[int | None, CandidateTable]]:
        """The catalog's rules as arrays, rebuilt when the catalog changes (the catalog
        returns the same snapshot until then); the last one known while Redis is down."""
        if not self.redis_down:
            try:
                snapshot: CatalogSnapshot = yield from self._catalog.snapshot_plan()
            except redis.RedisError:
                self.redis_failed()
            else:
                if snapshot is not self._table[0]:
                    self._table = (snapshot, CandidateTable.of(snapshot.offers))
        known, table = self._table
        return (None if known is None else known.version), table

    def _read(self, user_ids: Sequence[str], recall: Sequence[str | None] | None = None,
              remembered: Callable[[dict[bytes, bytes]], object | None] | None = None,
              ) -> Plan[_Read]:
        """Users' features, the offers they were given, the budgets spent and, per user, the
        hash at their `recall` key (None: none), in one round trip; a user whose hash holds
        an answer (`remembered` finds one) needs no features, and theirs are not unpacked."""
        if self.redis_down:
            return _Read.unreachable(len(user_ids))
        recalled = [key for key in recall or () if key is not None]
        wanted = [*(keys.given(user_id) for user_id in user_ids), keys.SPENT, *recalled]
        positions = iter(range(len(user_ids) + 1, len(wanted)))
        extra = Extra(wanted, [None if key is None else next(positions) for key in recall or ()],
                      lambda fields: remembered is not None and remembered(fields) is not None)
        try:
            meta, states = yield from self._store.read_plan(user_ids, extra)
        except redis.RedisError:
            self.redis_failed()
            return _Read.unreachable(len(user_ids))
        replies = extra.replies
        given = [OfferCatalog.parse_given(reply, self._policy.given_ttl_s)
                 for reply in replies[:len(user_ids)]]
        spent = {name.decode(): float(value) for name, value in replies[len(user_ids)].items()}
        found = iter(replies[len(user_ids) + 1:])
        hashes = [{} if key is None else next(found) for key in recall or [None] * len(states)]
        return _Read(meta, states, given, spent, False, hashes)

    # -- deciding ---------------------------------------------------------------------

    def decide(self, request: DecisionRequest, now: datetime | None = None) -> Decision:
        return self.decide_many([request], now)[0]

    def decide_many(self, requests: Sequence[DecisionRequest],
                    now: datetime | None = None) -> list[Decision]:
        return run(self._client, self.decide_plan(requests, now))

    def decide_plan(self, requests: Sequence[DecisionRequest],
                    now: datetime | None = None) -> Plan[list[Decision]]:
        """`decide_many` as a plan (nbo.redis_plan), for the API's event loop."""
        read = yield from self._timed("read", self._read([r.user_id for r in requests]))
        return (yield from self._decide_all(requests, read, now or datetime.now(UTC)))

    def recall_or_decide_plan(
            self, requests: Sequence[DecisionRequest], recall: Sequence[str | None],
            now: datetime | None = None, *,
            remembered: Callable[[dict[bytes, bytes]], T | None],
            keep: Keep | None = None,
    ) -> Plan[list[Decision | T]]:
        """For each request, the answer `remembered` finds in the hash stored at its
        `recall` key (None: none kept for it), else a new decision: all from the same Redis
        round trip. `keep` stores the new decisions before they are logged, and says which
        stand (a concurrent call may have stored its own first): only those are logged."""
        read = yield from self._timed("read", self._read([r.user_id for r in requests], recall,
                                                         remembered))
        answers: list[Decision | T | None] = [remembered(found) for found in read.recalled]
        fresh = [user for user, answer in enumerate(answers) if answer is None]
        if fresh:
            decided = yield from self._decide_all([requests[user] for user in fresh],
                                                  read.of(fresh), now or datetime.now(UTC), keep)
            for user, decision in zip(fresh, decided, strict=True):
                answers[user] = decision
        return [answer for answer in answers if answer is not None]  # every one, decided

    def _decide_all(self, requests: Sequence[DecisionRequest], read: _Read,
                    now: datetime, keep: Keep | None = None) -> Plan[list[Decision]]:
        decided = yield from self._timed("decide", self._decisions(requests, read, now))
        decisions = [decision for decision, _ in decided]
        if keep is not None and not read.degraded:
            standing = yield from keep(decisions)
            decided = [pair for pair, stands in zip(decided, standing, strict=True) if stands]
        logged = self._logged(decided, now)
        if read.degraded or self.redis_down:  # logged with the first decision once it is back
            self._unlogged.append(logged)
        elif logged:
            yield from self._timed("log", self._log(logged))
        return decisions

    def _decisions(self, requests: Sequence[DecisionRequest], read: _Read,
                   now: datetime) -> Plan[list[tuple[Decision, _Offers]]]:
        """Every user's decision, one stage at a time over all the users asked: a stage's
        code and data stay in the CPU's caches from one user to the next, which makes a
        batch about a fifth cheaper per user than taking each user through every stage.
        Where a model or rule computes many users as cheaply as a few (send hours,
        eligibility, the two rankers, category hours), it is called once for all of them."""
        catalog_version, table = yield from self.candidates()  # Redis about once a second
        call = _Call(now, read, table, catalog_version, self.models)
        subjects = [self._subject(request, state, given, call)
                    for request, state, given in zip(requests, read.states, read.given,
                                                     strict=True)]
        hours = self._send_hours(subjects, call)
        reaches = [self._reach(subject, learned, call)
                   for subject, learned in zip(subjects, hours, strict=True)]
        pools = self._pools(subjects, reaches, call)
        offers = self._offers(subjects, reaches, pools, call)
        categories = self._categories(subjects, call)
        brands = self._brands(subjects, categories, call)
        category_hours = self._category_hours(subjects, categories, call)
        return [(self._decision(subject, reach, pool, offer, ranked, timing, brand, call), offer)
                for subject, reach, pool, offer, ranked, timing, brand
                in zip(subjects, reaches, pools, offers, categories, category_hours, brands,
                       strict=True)]

    def _subject(self, request: DecisionRequest, known: UserState | None,
                 given: dict[str, int], call: _Call) -> _Subject:
        read, now = call.read, call.now
        state = known or UserState(request.user_id, read.meta.anchor if read.meta else now)
        if request.country and not state.profile.country:  # the caller knows it, nbo not
            state = replace(state, profile=replace(state.profile, country=request.country))
        state = as_the_journey_tells(state, request.journey)
        allowed = [c for c in CHANNELS if request.channels is None or c in request.channels]
        if read.degraded:  # contact counts unknown: nothing that would message the user
            allowed = [c for c in allowed if c in UNSCHEDULED]
        reach = reachable(state, allowed)
        budget = (None if read.degraded
                  else self._contact_policy(call.models).budget(state, now, sorted(reach)))
        return _Subject(
            request, state, "degraded" if read.degraded else _source(state, known, call),
            state.stage(now).value, self._policy.holdout.group(request.user_id, request.journey),
            allowed, reach, budget, given)

    @staticmethod
    def _send_hours(subjects: Sequence[_Subject], call: _Call) -> list[dict[str, int]]:
        """Each user's learned local send hour per allowed channel, all in one computation."""
        if call.models is None:
            return [{} for _ in subjects]
        return call.models.send_time.send_hours_of(
            [(subject.state, subject.allowed) for subject in subjects], call.now)

    def _reach(self, subject: _Subject, learned: Mapping[str, int], call: _Call) -> _Reach:
        """The user's channels, scored, and when a message on the best would reach them
        (`learned`: channel -> local send hour, from `_send_hours`)."""
        state, budget, now = subject.state, subject.budget, call.now
        open_allowed = subject.reach if budget is None else frozenset(budget.allowed_channels)
        channels = self._channels(state, subject.allowed, subject.reach, open_allowed, learned,
                                  call)
        best = next((c for c in channels if c.allowed), None)
        # else the best reaching the user (the caller may allow channels that do not)
        context = (best or next((c for c in channels if c.channel in subject.reach), None)
                   or next(iter(channels), None))
        when = now
        if context is not None and context.channel in INTERRUPTING and context.send_at is not None:
            when = context.send_at
        return _Reach(channels, best, context,
                      when.astimezone(user_zone(state.profile.timezone)))

    def _pools(self, subjects: Sequence[_Subject], reaches: Sequence[_Reach],
               call: _Call) -> list[_Pool]:
        """The offers every rule allows each user, with how well each fits them: the rules
        checked for all users at once. An offer must be allowed on the channel the decision
        is for (the one its offers are scored for), when that channel reaches the user."""
        table, states = call.table, [subject.state for subject in subjects]
        fit = table.matrix.fit_of(states, call.now)
        relevance = fit[:, :, 0] + table.matrix.naming_of(
            [(*state.session.recent_categories, *state.session.cart_categories)
             for state in states])
        facts = [UserFacts(journey=subject.request.journey, stage=subject.stage,
                           segments=self._segments(subject.state),
                           reachable=_decided_on(subject, reach), interest=interest,
                           cart_value=max(subject.state.session.cart_value, 0.0),
                           given=subject.given, holdout=subject.group is not None,
                           cart_categories=subject.state.session.cart_categories_known)
                 for subject, reach, interest in zip(subjects, reaches, relevance, strict=True)]
        eligible, verdicts = table.eligible(facts, call.now, call.read.spent,
                                            limits_known=not call.read.degraded)
        return [_Pool(offers, fit[user, offers],
                      of_user(verdicts, user) if subject.request.explain else {})
                for user, (subject, offers) in enumerate(zip(subjects, eligible, strict=True))]

    def _decision(self, subject: _Subject, reach: _Reach, pool: _Pool,
                  offers: _Offers, categories: list[str],
                  category_hours: dict[str, int], brands: list[str], call: _Call) -> Decision:
        request, state, budget, now = subject.request, subject.state, subject.budget, call.now
        meta, models = call.read.meta, call.models
        chosen, terms = offers.chosen, offers.terms
        explanation = None
        if request.explain:
            explanation = {"removed": removed_by(call.table, pool.verdicts),
                           "arbitration": terms,
                           "features": self._features(state, now, subject.stage),
                           "contacts": dict(budget.blocked) if budget else {}}
        shown = categories[:request.n_categories]
        bands = {category: BANDS[band]
                 for category, band in state.category_price_bands(now, categories).items()}
        price_band = state.price_band(now)
        return Decision(
            decision_id=uuid.uuid4().hex, user_id=request.user_id, source=subject.source,
            degraded=call.read.degraded, offers=chosen, categories=shown,
            category_hours=category_hours,
            category_price_bands={c: bands[c] for c in shown if c in bands},
            brands=brands, items=self._items(categories, brands, bands, request.n_items, call),
            price_band=None if price_band is None else BANDS[price_band],
            channel=reach.best.channel if reach.best else None,
            channels=reach.channels, lifecycle_stage=subject.stage,
            contact_budget=None if budget is None else ContactBudgetView(
                budget.window_days, budget.sent, budget.cap, budget.remaining,
                budget.next_allowed_at),
            holdout=subject.group is not None, holdout_group=subject.group,
            journey=request.journey, campaign_id=request.campaign_id,
            model_version=models.version if models else None,
            features_version=meta.version if meta else None,
            catalog_version=call.catalog_version, explanation=explanation)

    def _contact_policy(self, models: ServingModels | None) -> ContactPolicy:
        """The configured policy with the served model's learned weekly cap."""
        weekly_cap = models.weekly_cap if models else None
        if self._contacts.weekly_cap != weekly_cap:  # once per model (re)load
            self._contacts = replace(self._policy.contacts, weekly_cap=weekly_cap)
        return self._contacts

    def _channels(self, state: UserState, allowed: Sequence[str], reach: frozenset[str],
                  open_allowed: frozenset[str], learned: Mapping[str, int],
                  call: _Call) -> list[ChannelScore]:
        """Every allowed channel with its score, best first, and its hour: the learned one,
        out of the quiet hours for a message that interrupts (in-app and web are seen at a
        visit); when it falls next where the caps allow, on the channels that reach the
        user."""
        models, costs, now = call.models, self._policy.channel_costs, call.now
        policy = self._contact_policy(models)
        rates = models.channels.rates_for(state, now) if models else {}
        hours = {c: policy.send_hour(c, learned.get(c, DEFAULT_SEND_HOUR)) for c in allowed}
        send_at = policy.send_times(state, {c: hours[c] for c in allowed if c in reach}, now)
        scored = []
        for channel in allowed:
            rate, cost = rates.get(channel, 0.0), costs.get(channel, 0.0)
            scored.append(ChannelScore(channel, rate, cost, rate * self._policy.open_value - cost,
                                       channel in open_allowed, hours[channel],
                                       send_at.get(channel)))
        return sorted(scored, key=lambda c: (not c.allowed, -c.score, c.channel))

    def _offers(self, subjects: Sequence[_Subject], reaches: Sequence[_Reach],
                pools: Sequence[_Pool], call: _Call) -> list[_Offers]:
        """Each user's offers: their eligible offers scored (the offer model called once per
        `OFFER_USERS_PER_CALL` users), those worth more than they cost, explored."""
        scorer = call.models.offer_response if call.models else None
        answers = [_Offers([], {"reason": "no eligible offer" if scorer else
                                "no offer model loaded"}, len(pool.eligible)) for pool in pools]
        if scorer is None:
            return answers
        scored = [user for user, (reach, pool) in enumerate(zip(reaches, pools, strict=True))
                  if len(pool.eligible) and reach.context is not None]
        population = call.read.meta.engagement if call.read.meta else {}
        for first in range(0, len(scored), OFFER_USERS_PER_CALL):
            users = scored[first:first + OFFER_USERS_PER_CALL]
            shared = np.array([self._shared_columns(subjects[user], reaches[user], population,
                                                    call) for user in users], dtype=np.float32)
            eligible = [pools[user].eligible for user in users]
            matrix = offer_rows_of(shared, call.table.matrix, eligible,
                                   [pools[user].fit for user in users])
            counts = [len(offers) for offers in eligible]
            probabilities = scorer.probabilities(matrix, counts)
            offered = len(matrix) - len(users)  # each user's no-offer row follows them all
            for at, (user, end, count) in enumerate(zip(users, accumulate(counts), counts,
                                                        strict=True)):
                rows = ((matrix[end - count:end], matrix[offered + at])
                        if subjects[user].request.explain else None)
                answers[user] = self._chosen(subjects[user], reaches[user], pools[user],
                                             probabilities[end - count:end],
                                             float(probabilities[offered + at]), call, rows)
        return answers

    @staticmethod
    def _shared_columns(subject: _Subject, reach: _Reach,
                        population: Mapping[str, Mapping[str, float]], call: _Call) -> list[float]:
        """The offer model's user and context columns for the channel offers are scored for."""
        assert reach.context is not None  # only users with a channel are scored
        local = reach.local
        return shared_columns(subject.state, call.now, reach.context.channel,
                              subject.request.journey, local.hour, local.weekday() >= 5,
                              population)

    def _chosen(self, subject: _Subject, reach: _Reach, pool: _Pool, with_offer: np.ndarray,
                without: float, call: _Call,
                rows: tuple[np.ndarray, np.ndarray] | None = None) -> _Offers:
        """From the model's P(convert) with each eligible offer and without any: the offers
        worth more than they cost, in the order exploration shows them; explained with the
        model's `rows` (the eligible offers', the no-offer one)."""
        request, state, table, eligible = subject.request, subject.state, call.table, pool.eligible
        context = reach.context
        assert context is not None  # only users with a channel are scored
        uplift = with_offer - without
        purchases = state.purchases
        order_value = (purchases.average_order()  # returns may outweigh purchases
                       if purchases.occasions and purchases.amount > 0
                       else self._policy.default_order_value)
        cost = table.cost[eligible]
        value = expected_value(with_offer, without, cost, order_value, self._policy.order_margin)
        worth = np.flatnonzero(worth_offering(value))
        # every offer the exploration could show, best first (ties: the catalog's order);
        # it arranges these alone exactly as it would all the worthwhile ones
        exploration = self._policy.exploration
        shown = exploration.top_shown(request.n_offers)
        best = worth[np.argsort(-value[worth], kind="stable")[:shown]]
        logged = list(zip(table.offer_ids[eligible[best]].tolist(),
                          np.round(value[best], 6).tolist(), strict=True))
        order, propensity = exploration.arrange(
            value[best], np.abs(value[best]) * 0.5, request.n_offers, self._rng)
        chosen = [ChosenOffer(offer_id=table.offers[eligible[best[i]]].offer_id,
                              kind=table.offers[eligible[best[i]]].kind.value,
                              value=table.offers[eligible[best[i]]].value,
                              p_convert=float(with_offer[best[i]]),
                              uplift=float(uplift[best[i]]),
                              expected_value=float(value[best[i]]), propensity=float(p))
                  for i, p in zip(order, propensity, strict=True)]
        if not request.explain:
            return _Offers(chosen, {}, len(eligible), logged, context.channel)
        scorer = call.models.offer_response if call.models else None
        assert scorer is not None and rows is not None
        terms: dict[str, object] = {
            "p_convert_without_offer": float(without), "order_value": order_value,
            "order_margin": self._policy.order_margin, "channel": context.channel,
            "local_hour": reach.local.hour,
            "not_worth_their_cost": [table.offers[eligible[i]].offer_id
                                     for i in np.flatnonzero(~worth_offering(value))]}
        if chosen:  # what made the model's case for the first offer
            row = rows[0][best[order[0]]]
            terms["drivers"] = {"offer_id": chosen[0].offer_id, **drivers(
                row, scorer.contributions(np.stack([row, rows[1]])))}
        return _Offers(chosen, terms, len(eligible), logged, context.channel)

    # -- small read-time facts --------------------------------------------------------

    def _categories(self, subjects: Sequence[_Subject], call: _Call) -> list[list[str]]:
        """Each user's categories: those their journey is about first (decisions/journeys.py),
        then the learned ranking's (own history, ALS, popularity), all scored in one call;
        without a model, by the user's decayed interest."""
        wanted = [max(subject.request.n_categories, USER_CATEGORIES) for subject in subjects]
        ranked = self._ranked_categories(subjects, wanted, call)
        for subject, found, n in zip(subjects, ranked, wanted, strict=True):
            lead = journey_categories(subject.request.journey, subject.state.session)
            if lead:
                found[:] = [*lead, *(c for c in found if c not in lead)][:n]
        return ranked

    @staticmethod
    def _ranked_categories(subjects: Sequence[_Subject], wanted: Sequence[int],
                           call: _Call) -> list[list[str]]:
        now, meta = call.now, call.read.meta
        ranker = call.models.categories if call.models else None
        if ranker is None:
            return [[key for key, value in subject.state.values("category_affinity", now)
                     if value > 0][:n] for subject, n in zip(subjects, wanted, strict=True)]
        found = _prior_else_ranked(
            subjects, lambda user: ranker.by_prior(
                subjects[user].state.profile.country or "", wanted[user]),
            lambda states: ranker.rank_of(states, now, meta.cycles if meta else {},
                                          max(wanted, default=0)))
        return [[key for key, _ in ranking[:n]] for ranking, n in zip(found, wanted, strict=True)]

    @staticmethod
    def _category_hours(subjects: Sequence[_Subject], categories: Sequence[Sequence[str]],
                        call: _Call) -> list[dict[str, int]]:
        """The local hour each user most likely shops each of their shown categories
        (category timing), all in one computation."""
        timing = call.models.category_timing if call.models else None
        if timing is None:
            return [{} for _ in subjects]
        return timing.hours_of([(subject.state, ranked[:subject.request.n_categories])
                                for subject, ranked in zip(subjects, categories, strict=True)],
                               call.now)

    def _brands(self, subjects: Sequence[_Subject], categories: Sequence[Sequence[str]],
                call: _Call, n: int = 5) -> list[list[str]]:
        """Each user's brands by the learned ranking, all scored in one call; for a user
        with no history of their own, the most bought of their (prior's) categories;
        without a model, by the user's decayed interest."""
        if call.models is None:
            return [[key for key, value in subject.state.values("brand_affinity", call.now)
                     if value > 0][:n] for subject in subjects]
        ranker = call.models.brands
        found = _prior_else_ranked(subjects, lambda user: ranker.by_prior(categories[user], n),
                                   lambda states: ranker.rank_of(states, call.now, n))
        return [[key for key, _ in ranking] for ranking in found]

    def _items(self, categories: Sequence[str], brands: Sequence[str],
               price_bands: Mapping[str, str], n: int, call: _Call) -> list[str]:
        """Popular items of the user's best categories, top brands and price bands first."""
        recommender = call.models.items if call.models else None
        if recommender is None or n <= 0:
            return []
        return recommender.for_user(categories[:USER_CATEGORIES], brands[:USER_BRANDS],
                                    price_bands, n)

    @staticmethod
    def _segments(state: UserState) -> frozenset[str]:
        """The segments offers can target: `country:XX`, `buyer` or `prospect`, `app` (the
        forms an offer written is checked against: features/contract/offers.py)."""
        found = {"buyer" if state.purchases.lines else "prospect"}
        if state.profile.country:
            found.add(f"country:{state.profile.country}")
        if state.session.app_installed:
            found.add("app")
        return frozenset(found)

    @staticmethod
    def _features(state: UserState, now: datetime, stage: str) -> dict[str, object]:
        purchases = state.purchases
        last = purchases.last
        return {"lifecycle_stage": stage, "purchases": purchases.lines,
                "days_since_purchase": None if last is None
                else round((now - last).total_seconds() / 86_400, 2),
                "cart_value": state.session.cart_value,
                "cart_categories": list(state.session.cart_categories),
                "cart_partial": state.session.cart_partial,
                "recent_categories": list(state.session.recent_categories),
                "sent_last_7_days": state.sent_within(now, 7)}

    # -- logging ----------------------------------------------------------------------

    def _logged(self, decided: Sequence[tuple[Decision, _Offers]],
                now: datetime) -> list[_Logged]:
        """The decision log's entries (for feedback joins and off-policy evaluation: the
        candidates exploration arranged, how, and the propensities of its picks)."""
        exploration = self._policy.exploration
        arranged = {"method": exploration.method, "epsilon": exploration.epsilon,
                    "top_k": exploration.top_k}
        ts = now.isoformat()
        return [_Logged(decision.decision_id, decision.user_id, orjson.dumps({
            "decision_id": decision.decision_id, "user_id": decision.user_id, "ts": ts,
            "journey": decision.journey, "campaign_id": decision.campaign_id,
            "source": decision.source, "holdout": decision.holdout_group,
            "channel": decision.channel, "offer_channel": offers.channel,
            "offers": decision.offers,  # orjson writes dataclasses as objects
            "eligible": offers.eligible, "candidates": offers.candidates,
            "exploration": arranged, "model_version": decision.model_version,
            "features_version": decision.features_version,
            "catalog_version": decision.catalog_version}),
            [offer.offer_id for offer in decision.offers], ts)
            for decision, offers in decided]

    def _log_once(self, logged: Sequence[_Logged]) -> Plan[None]:
        """Write the decisions' log entries, their summaries and the counts of offers chosen,
        each decision atomically and only unless its summary is stored (`_LOG_ONCE`), all
        in one round trip. What counts against `max_per_user` is what the user was shown:
        impressions (decisions/feedback.py) and campaign blocks."""
        policy = self._policy
        yield from _LOG_ONCE.call_many([
            ([keys.decision(one.decision_id), keys.DECISIONS, keys.CHOSEN],
             [policy.decision_log_max, policy.decision_ttl_s, one.entry, one.user_id,
              orjson.dumps(one.chosen), one.ts, *one.chosen]) for one in logged])

    def log_unlogged_plan(self) -> Plan[None]:
        """Log the decisions made while Redis was down, unless it still is: what the next
        decision would do, for a worker that decides nothing new meanwhile (their feedback
        joins them once they are logged)."""
        if self._unlogged and not self.redis_down:
            yield from self._log([])

    def _log(self, logged: list[_Logged]) -> Plan[None]:
        """Write `logged` after the decisions whose log waits (made while Redis was down, or
        whose write failed), keeping their place in the log. A write that failed may have
        been applied, in part or whole, all the same: each decision is written once
        (`_LOG_ONCE`), so all of them wait for the next write."""
        waiting = []
        while self._unlogged:
            try:
                waiting.append(self._unlogged.popleft())
            except IndexError:  # another thread took the last
                break
        entries = [one for call in [*waiting, logged] for one in call]
        if not entries:  # another thread took the waiting ones
            return
        try:
            yield from self._log_once(entries)
        except redis.RedisError:
            self.redis_failed()
            self._unlogged.extend([*waiting, logged] if logged else waiting)


Ranking = list[tuple[str, float]]


def _prior_else_ranked(subjects: Sequence[_Subject], prior: Callable[[int], Ranking],
                       rank: Callable[[list[UserState]], list[Ranking]]) -> list[Ranking]:
    """Each user's ranking: `prior(user)` for a user with no history of their own (the
    rankers, trained on users with one, read nothing in them), else the ranker's, all the
    others ranked in one call."""
    by_prior = {user: prior(user) for user, subject in enumerate(subjects)
                if subject.source != "model"}
    known = [subject.state for user, subject in enumerate(subjects) if user not in by_prior]
    ranked = iter(rank(known) if known else [])
    return [by_prior[user] if user in by_prior else next(ranked)
            for user in range(len(subjects))]


def _decided_on(subject: _Subject, reach: _Reach) -> frozenset[str]:
    """The channel a user's offers may go out on: the decision's (the best with room under
    the caps, else the best reaching the user), when it reaches them; else none."""
    context = reach.context
    return subject.reach & {context.channel} if context is not None else frozenset()


def _source(state: UserState, known: UserState | None, call: _Call) -> Source:
    """Who answers for a user: their own history (buying, or interest shown), else their
    country's prior (training/affinity/priors.py), else the prior over all users."""
    if known is not None and (state.purchases.lines or any(
            value > 0 for value in state.counts_at("category_affinity", call.now).values())):
        return "model"
    ranker = call.models.categories if call.models else None
    country = state.profile.country
    if ranker is not None and country is not None and country in ranker.country_priors:
        return "country"
    return "global"
