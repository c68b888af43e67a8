"""Which offers a user may get now: the catalog's rules as arrays, checked all at once.

`CandidateTable` is built once per catalog version. A call then evaluates every rule for
every offer and every user it decides for with a few numpy operations (no Python loop over
offers), and only when the caller asks for an explanation turns the failed rules into
words.

Rules (docs/api.md, "Eligibility"):
- valid now (`valid_from` <= now < `valid_to`);
- journey: an offer listing journeys is only for those journeys;
- lifecycle stage and segments, when the offer lists them;
- a channel: the offer's channels (any when empty) must include the one it would go out
  on (the engine passes the decision's channel, when it reaches the user and the caller
  allows it);
- categories: an offer restricted to categories needs some interest of the user in one;
- in the cart journeys, the cart must reach the offer's minimum order value (elsewhere the
  minimum is a condition of redemption, which the response model weighs), and an offer
  restricted to categories must name one in the cart (when the cart's are known);
- the user has had it fewer than `max_per_user` times, and its budget still covers one
  more redemption (when Redis cannot say what was given and spent, an offer with either
  limit is not given);
- holdout users get no incentive (only content).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property, reduce

import numpy as np

from decisions.catalog import pays_one_more
from decisions.journeys import CART_JOURNEYS
from features.contract.offers import Offer
from features.contract.schema import Journey, LifecycleStage, OfferKind
from models.offer_response import CHANNELS, OfferMatrix

STAGES = tuple(stage.value for stage in LifecycleStage)
JOURNEYS = tuple(journey.value for journey in Journey)
NEVER = np.iinfo(np.int64).max


def _mask(offers: Sequence[Offer], vocabulary: Sequence[str], listed: str) -> np.ndarray:
    """(offers x vocabulary + 1) bool: where each offer allows the value, every value when it
    lists none (no restriction); the last column, for users with none of the vocabulary's
    values, only for offers that list none."""
    index = {value: i for i, value in enumerate(vocabulary)}
    mask = np.zeros((len(offers), len(vocabulary) + 1), dtype=bool)
    for row, offer in enumerate(offers):
        values = [str(v) for v in _listed(offer, listed)]
        if values:
            mask[row, [index[v] for v in values if v in index]] = True
        else:
            mask[row] = True
    return mask


def _listed(offer: Offer, listed: str) -> Sequence[object]:
    if listed == "journeys":
        return offer.journeys
    if listed == "channels":
        return offer.channels
    if listed == "stages":
        return offer.eligibility.lifecycle_stages
    return offer.eligibility.segments


def _epoch(moment: datetime | None, default: float) -> float:
    """Epoch seconds, fractions kept (an offer ending at 12:00:00.5 runs until then)."""
    return default if moment is None else moment.timestamp()


@dataclass(frozen=True)
class UserFacts:
    """What the rules need to know about one user."""

    journey: str | None
    stage: str
    segments: frozenset[str]
    reachable: frozenset[str]  # channels its offers may go out on (none: no offer)
    interest: np.ndarray  # (offers,) the user's interest share in each offer's categories
    cart_value: float
    given: Mapping[str, int]  # offer id -> times the user already got it
    holdout: bool
    cart_categories: Sequence[str] = ()  # the categories in the cart (none: not known)


def _flags(index: Mapping[str, int], wanted: Sequence[Iterable[str]]) -> np.ndarray:
    """(users, vocabulary + 1) bool: which values of the vocabulary (`index`: value ->
    column) each user has, and the last column, set for every user (`_mask`'s column for
    users with none, which offers restricted to some values leave out)."""
    flags = np.zeros((len(wanted), len(index) + 1), dtype=bool)
    flags[:, -1] = True
    cells = [(row, index[value]) for row, values in enumerate(wanted) for value in values
             if value in index]
    if cells:
        rows, columns = zip(*cells, strict=True)
        flags[rows, columns] = True
    return flags


def _picks(index: Mapping[str, int], values: Iterable[str | None]) -> list[int]:
    """Each user's column of `_mask` for their one value: -1 (the last) when not listed."""
    return [index.get(value, -1) if value is not None else -1 for value in values]


_JOURNEY_INDEX = {journey: i for i, journey in enumerate(JOURNEYS)}
_STAGE_INDEX = {stage: i for i, stage in enumerate(STAGES)}
_CHANNEL_INDEX = {channel: i for i, channel in enumerate(CHANNELS)}


@dataclass(frozen=True)
class CandidateTable:
    offers: tuple[Offer, ...]
    matrix: OfferMatrix  # the response model's offer columns
    valid_from: np.ndarray  # epoch seconds (float: fractions kept; +-inf when open)
    valid_to: np.ndarray
    journeys: np.ndarray  # (offers, journeys + 1) bool: _mask's, as the next three
    stages: np.ndarray  # (offers, stages + 1)
    segment_names: tuple[str, ...]
    segments: np.ndarray  # (offers, segments + 1)
    channels: np.ndarray  # (offers, CHANNELS + 1): every channel when unrestricted, never
    # the last (a user reachable on no channel gets no offer)
    any_category: np.ndarray  # (offers,) bool: not restricted to categories
    min_order: np.ndarray
    max_per_user: np.ndarray  # NEVER when unlimited
    budget: np.ndarray  # inf when unlimited
    cost: np.ndarray
    content: np.ndarray  # (offers,) bool: no incentive, so holdout users may get it
    index: dict[str, int]  # offer id -> row
    offer_ids: np.ndarray  # (offers,) the ids as an array, to take many rows' at once

    @classmethod
    def of(cls, offers: Sequence[Offer]) -> CandidateTable:
        offers = tuple(offers)
        names = tuple(sorted({s for o in offers for s in o.eligibility.segments}))
        channels = _mask(offers, CHANNELS, "channels")
        channels[:, -1] = False  # a user reachable on no channel can get no offer
        return cls(
            offers=offers, matrix=OfferMatrix.of(offers),
            valid_from=np.array([_epoch(o.valid_from, -np.inf) for o in offers]),
            valid_to=np.array([_epoch(o.valid_to, np.inf) for o in offers]),
            journeys=_mask(offers, JOURNEYS, "journeys"),
            stages=_mask(offers, STAGES, "stages"),
            segment_names=names, segments=_mask(offers, names, "segments"),
            channels=channels,
            any_category=np.array([not o.categories for o in offers], dtype=bool),
            min_order=np.array([o.min_order_value for o in offers]),
            max_per_user=np.array([min(o.max_per_user or NEVER, NEVER) for o in offers],
                                  dtype=np.int64),  # (offers stored before writes capped it)
            budget=np.array([np.inf if o.budget is None else o.budget for o in offers]),
            cost=np.array([o.cost for o in offers]),
            content=np.array([o.kind is OfferKind.CONTENT for o in offers], dtype=bool),
            index={o.offer_id: row for row, o in enumerate(offers)},
            offer_ids=np.array([o.offer_id for o in offers], dtype=object),
        )

    def __len__(self) -> int:
        return len(self.offers)

    def rules(self, users: Sequence[UserFacts], now: datetime, spent: Mapping[str, float],
              limits_known: bool = True) -> dict[str, np.ndarray]:
        """Rule name -> (users, offers) bool: True where the offer passes that rule for the
        user, at `now` with `spent` (offer id -> cost spent from its budget); (1, offers)
        for the rules that are the same for every user (`of_user` takes a user's rows).
        Without `limits_known` (Redis unreachable: what was spent and given is unknown), no
        offer with a budget or a `max_per_user` passes: neither limit can be kept."""
        at = now.timestamp()
        interest = np.array([u.interest for u in users], dtype=np.float64).reshape(
            len(users), len(self))
        cart_value = np.array([u.cart_value for u in users], dtype=np.float64)[:, None]
        outside_cart = np.array([u.journey not in CART_JOURNEYS for u in users],
                                dtype=bool)[:, None]
        holdout = np.array([u.holdout for u in users], dtype=bool)[:, None]
        given = np.zeros((len(users), len(self)), dtype=np.int64)
        for row, user in enumerate(users):
            for offer_id, count in user.given.items():
                if (column := self.index.get(offer_id)) is not None:
                    given[row, column] = count
        under_max = given < self.max_per_user
        within_budget = pays_one_more(self._per_offer(spent), self.cost, self.budget)
        if not limits_known:
            under_max &= self.max_per_user == NEVER
            within_budget &= np.isinf(self.budget)
        return {
            "valid_now": ((self.valid_from <= at) & (at < self.valid_to))[None],
            "journey": self.journeys[:, _picks(_JOURNEY_INDEX, (u.journey for u in users))].T,
            "lifecycle_stage": self.stages[:, _picks(_STAGE_INDEX, (u.stage for u in users))].T,
            "segment": _flags(self._segment_index, [u.segments for u in users])
            @ self.segments.T,
            "channel": _flags(_CHANNEL_INDEX, [u.reachable for u in users]) @ self.channels.T,
            "category_interest": self.any_category | (interest > 0),
            "min_order_value": (self.min_order <= cart_value) | outside_cart,
            "cart_categories": self._for_cart(users),
            "max_per_user": under_max,
            "budget": within_budget[None],
            "holdout": self.content | ~holdout,
        }

    def _for_cart(self, users: Sequence[UserFacts]) -> np.ndarray:
        """The cart rule's verdicts: in a cart journey, when the cart's categories are
        known, only offers for any category or naming one of them pass."""
        carts = [u.cart_categories if u.journey in CART_JOURNEYS else () for u in users]
        if not any(carts):
            return np.ones((1, len(self)), dtype=bool)
        unknown = np.array([not cart for cart in carts], dtype=bool)[:, None]
        return np.asarray(self.any_category | self.matrix.naming_of(carts) | unknown)

    @cached_property
    def _segment_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.segment_names)}

    def _per_offer(self, values: Mapping[str, float]) -> np.ndarray:
        """A sparse offer id -> value mapping as an (offers,) array (0 elsewhere)."""
        array = np.zeros(len(self))
        for offer_id, value in values.items():
            row = self.index.get(offer_id)
            if row is not None:
                array[row] = value
        return array

    def eligible(self, users: Sequence[UserFacts], now: datetime, spent: Mapping[str, float],
                 limits_known: bool = True) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
        """Each user's indices of the offers passing every rule, and the rules' verdicts
        (`rules`)."""
        verdicts = self.rules(users, now, spent, limits_known)
        passing = reduce(np.logical_and, verdicts.values())
        return [np.flatnonzero(row) for row in passing], verdicts


def of_user(verdicts: Mapping[str, np.ndarray], user: int) -> dict[str, np.ndarray]:
    """One user's verdicts, rule -> (offers,) bool, from `CandidateTable.rules`."""
    return {rule: passing[user if len(passing) > 1 else 0]
            for rule, passing in verdicts.items()}


def removed_by(table: CandidateTable, verdicts: Mapping[str, np.ndarray]) -> dict[str, list[str]]:
    """Offer id -> the rules it failed (for `explain`)."""
    failed: dict[str, list[str]] = {}
    for rule, passing in verdicts.items():
        for row in np.flatnonzero(~passing):
            failed.setdefault(table.matrix.offer_ids[row], []).append(rule)
    return failed
