"""The offer-response model at request time: its columns, filled from one `UserState`,
and the model (compiled, or its ONNX graph) scoring every candidate offer of a decision,
of several users' decisions at once.

FEATURES is the model's schema (saved with each version). training/offers/design.py fills
the same columns for many logged sends with polars; `offer_rows` fills them for one user
and a set of candidate offers with numpy, the user and context part once and the offer
part from a matrix built when the catalog changes. A test holds the two to the same
numbers. Each user also gets a "no offer" row (every offer column at zero), so each call
also yields the uplift: P(convert | offer) - P(convert | no offer).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path

import lightgbm
import numpy as np
import onnx

from features.contract.offers import Offer
from features.contract.schema import Channel, Journey, OfferKind
from features.engagement import DEFAULT_ENGAGEMENT, RESPONSES, SENDS
from features.state import UserState
from models.registry import ModelVersion, ModelVersionError
from models.tree_scoring import GroupedScorer, grouped_scorer

DAY_SECONDS = 86_400.0
CHANNELS = tuple(channel.value for channel in Channel)
JOURNEYS = tuple(journey.value for journey in Journey)
KINDS = tuple(kind.value for kind in OfferKind)
USER_COLUMNS = ("days_since_purchase", "occasions_per_30d", "spend_per_30d", "aov",
                "return_rate", "days_since_seen", "price_low", "price_mid", "price_high",
                "cart_value")  # rates rather than totals: totals grow with the log's length
RATE_COLUMNS = ("open_rate", "click_rate", "conversion_rate",  # on the message's channel
                "open_rate_all", "conversion_rate_all",  # on every channel
                "hour_open_share")  # the user's opens on the channel at this local hour
HOUR_PRIOR_OPENS = 2.0  # spread evenly over the 24 hours
MIN_TENURE_DAYS = 7.0  # per-30-day rates of newer users are over this many days
CONTEXT_COLUMNS = (*(f"channel_{c}" for c in CHANNELS), *(f"journey_{j}" for j in JOURNEYS),
                   "local_hour", "weekend")
CATEGORY_COLUMNS = ("offer_category_interest",  # the user's interest share in its categories
                    "offer_categories_engaged")  # how many of the user's categories it covers
OFFER_COLUMNS = ("has_offer", *(f"kind_{k}" for k in KINDS), "offer_value", "offer_cost",
                 "offer_min_order", *CATEGORY_COLUMNS)
FEATURES = (*USER_COLUMNS, *RATE_COLUMNS, *CONTEXT_COLUMNS, *OFFER_COLUMNS)
# the leading columns, the same in every row of one call of `offer_rows`
SHARED_COLUMNS = len(USER_COLUMNS) + len(RATE_COLUMNS) + len(CONTEXT_COLUMNS)
_OFFER_OWN = len(OFFER_COLUMNS) - len(CATEGORY_COLUMNS)
# The graph's mark of the columns it was trained on, in order (with the no-offer arm's
# category columns at 0): a graph without it, or with other columns, is not served.
FEATURES_KEY = "features"
FEATURES_MARK = ",".join(FEATURES)


def _days(since: datetime | None, now: datetime) -> float | None:
    return None if since is None else (now - since).total_seconds() / DAY_SECONDS


def user_columns(state: UserState, now: datetime) -> list[float]:
    """USER_COLUMNS for one user at `now`."""
    purchases = state.purchases
    months = max(_days(state.activity.first_seen, now) or 0.0, MIN_TENURE_DAYS) / 30.0
    bands = state.counts_at("price_affinity", now)
    total = sum(bands.get(band, 0.0) for band in ("0", "1", "2"))
    shares = [bands.get(band, 0.0) / (total if total > 0 else 1.0) for band in ("0", "1", "2")]
    since_purchase, since_seen = _days(purchases.last, now), _days(state.activity.last_seen, now)
    return [
        -1.0 if since_purchase is None else since_purchase,
        purchases.occasions / months,
        purchases.amount / months,
        purchases.average_order(),
        purchases.returns / max(purchases.lines + purchases.returns, 1),
        -1.0 if since_seen is None else since_seen,
        *shares,
        max(state.session.cart_value or 0.0, 0.0),
    ]


def rate_columns(state: UserState, now: datetime, channel: str, local_hour: int,
                 population: Mapping[str, Mapping[str, float]]) -> list[float]:
    """RATE_COLUMNS for one user, channel and local hour at `now`."""
    values = {name: state.counts_at(name, now) for name in (SENDS, *RESPONSES.values())}
    rates = DEFAULT_ENGAGEMENT.rates_on(values, population, channel)
    pooled_population = {response: {"all": sum(r.values()) / max(len(r), 1)}
                         for response, r in population.items()}
    pooled = {name: {"all": sum(per_channel.values())} for name, per_channel in values.items()}
    overall = (DEFAULT_ENGAGEMENT.rates_on(pooled, pooled_population, "all")
               if any(values.values()) else {})  # any send or response, as in training
    opens = state.counts_at("hourly_opens", now)
    prefix = f"{channel}:"
    on_channel = sum(v for key, v in opens.items() if key.startswith(prefix))
    share = ((opens.get(f"{prefix}{local_hour}", 0.0) + HOUR_PRIOR_OPENS / 24)
             / (on_channel + HOUR_PRIOR_OPENS))
    return [rates.get("open", 0.0), rates.get("click", 0.0), rates.get("conversion", 0.0),
            overall.get("open", 0.0), overall.get("conversion", 0.0), share]


def context_columns(channel: str, journey: str | None, local_hour: int,
                    weekend: bool) -> list[float]:
    return [*(float(channel == c) for c in CHANNELS), *(float(journey == j) for j in JOURNEYS),
            float(local_hour), float(weekend)]


@dataclass(frozen=True)
class OfferMatrix:
    """The offer columns of a catalog, built once per catalog version."""

    offer_ids: tuple[str, ...]
    columns: np.ndarray  # (offers, OFFER_COLUMNS but CATEGORY_COLUMNS) float32
    categories: tuple[str, ...]  # the categories some offer is restricted to
    membership: np.ndarray  # (offers, categories) bool: where the offer names it
    any_category: np.ndarray  # (offers,) bool: offers for every category

    @classmethod
    def of(cls, offers: Sequence[Offer]) -> OfferMatrix:
        categories = tuple(sorted({c for offer in offers for c in offer.categories}))
        index = {category: i for i, category in enumerate(categories)}
        membership = np.zeros((len(offers), len(categories)), dtype=bool)
        for row, offer in enumerate(offers):
            membership[row, [index[c] for c in offer.categories]] = True
        columns = np.array([[1.0, *(float(o.kind.value == k) for k in KINDS), o.value, o.cost,
                             o.min_order_value] for o in offers],
                           dtype=np.float32).reshape(len(offers), _OFFER_OWN)
        return cls(tuple(o.offer_id for o in offers), columns, categories, membership,
                   np.array([not o.categories for o in offers], dtype=bool))

    @cached_property
    def _index(self) -> dict[str, int]:
        return {category: i for i, category in enumerate(self.categories)}

    @cached_property
    def _named(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The offers restricted to categories, their categories' columns one offer after
        another, and where each offer's start: for sums over each offer's categories."""
        restricted = np.flatnonzero(~self.any_category)
        per_offer = self.membership[restricted]
        starts = np.concatenate([[0], np.cumsum(per_offer.sum(axis=1))[:-1]]).astype(np.intp)
        return restricted, np.nonzero(per_offer)[1], starts

    def naming(self, categories: Sequence[str]) -> np.ndarray:
        """(offers,) bool: the offers restricted to one of `categories`."""
        return np.asarray(self.naming_of([categories])[0])

    def naming_of(self, wanted: Sequence[Sequence[str]]) -> np.ndarray:
        """(users, offers) bool: `naming` for each user's categories."""
        asked = np.zeros((len(wanted), len(self.categories)), dtype=bool)
        for row, categories in enumerate(wanted):
            asked[row, [self._index[c] for c in categories if c in self._index]] = True
        return np.asarray(asked @ self.membership.T)  # any named category asked

    def fit(self, state: UserState, now: datetime, rows: np.ndarray) -> np.ndarray:
        """(len(rows), CATEGORY_COLUMNS): for each offer, the user's share of category
        interest in its categories and how many of the user's categories (those with
        interest) it covers; an offer for any category covers all of them, share 1."""
        return np.asarray(self.fit_of([state], now)[0, rows])

    def fit_of(self, states: Sequence[UserState], now: datetime) -> np.ndarray:
        """(users, offers, CATEGORY_COLUMNS): `fit` of every offer for each user, each
        user's sums over their offers' categories taken alone (the same for any users)."""
        shares = np.zeros((len(states), len(self.categories)))
        engaged = np.zeros(len(states))
        for row, state in enumerate(states):
            affinity = state.counts_at("category_affinity", now)  # never below zero
            total = sum(affinity.values()) or 1.0
            engaged[row] = sum(value > 0 for value in affinity.values())
            for category, value in affinity.items():
                if (column := self._index.get(category)) is not None:
                    shares[row, column] = value / total
        fit = np.zeros((len(states), len(self.offer_ids), len(CATEGORY_COLUMNS)))
        restricted, columns, starts = self._named
        if len(restricted) and len(states):
            named = shares[:, columns]
            fit[:, restricted, 0] = np.add.reduceat(named, starts, axis=1)
            fit[:, restricted, 1] = np.add.reduceat((named > 0).astype(np.float64), starts,
                                                    axis=1)
        fit[:, self.any_category, 0] = 1.0
        fit[:, self.any_category, 1] = engaged[:, None]
        return fit


def shared_columns(state: UserState, now: datetime, channel: str, journey: str | None,
                   local_hour: int, weekend: bool,
                   population: Mapping[str, Mapping[str, float]]) -> list[float]:
    """The SHARED_COLUMNS of one user's rows: theirs and the message's context."""
    return [*user_columns(state, now),
            *rate_columns(state, now, channel, local_hour, population),
            *context_columns(channel, journey, local_hour, weekend)]


def offer_rows(state: UserState, now: datetime, channel: str, journey: str | None,
               local_hour: int, weekend: bool, population: Mapping[str, Mapping[str, float]],
               offers: OfferMatrix, rows: np.ndarray,
               fit: np.ndarray | None = None) -> np.ndarray:
    """The model's input (len(rows) + 1, FEATURES) float32: one row per candidate offer
    (indices into `offers`), then the no-offer row. `fit`: the rows' CATEGORY_COLUMNS
    when the caller has them already (`OfferMatrix.fit`)."""
    shared = shared_columns(state, now, channel, journey, local_hour, weekend, population)
    fits = [offers.fit(state, now, rows) if fit is None else fit]
    return offer_rows_of(np.array([shared], dtype=np.float32), offers, [rows], fits)


def offer_rows_of(shared: np.ndarray, offers: OfferMatrix, rows: Sequence[np.ndarray],
                  fits: Sequence[np.ndarray]) -> np.ndarray:
    """The model's input for several users: every user's candidate offer rows, user after
    user, then each user's no-offer row in the same order (one user: `offer_rows`).
    `shared` (users, SHARED_COLUMNS) from `shared_columns`, each user's candidate offers
    in `rows` and their CATEGORY_COLUMNS in `fits`."""
    users = len(rows)
    counts = [len(candidates) for candidates in rows]
    offered = sum(counts)
    matrix = np.zeros((offered + users, len(FEATURES)), dtype=np.float32)
    if users:  # one user, the most common call, without copies of its parts
        matrix[:offered, :SHARED_COLUMNS] = (shared[0] if users == 1
                                             else np.repeat(shared, counts, axis=0))
        matrix[offered:, :SHARED_COLUMNS] = shared
        matrix[:offered, SHARED_COLUMNS:SHARED_COLUMNS + _OFFER_OWN] = offers.columns[
            _joined(rows)]
        matrix[:offered, SHARED_COLUMNS + _OFFER_OWN:] = _joined(fits)
    return matrix


def _joined(arrays: Sequence[np.ndarray]) -> np.ndarray:
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


class OfferResponseScorer:
    """P(convert) for the rows of `offer_rows`, by the model compiled or its ONNX graph
    (models/tree_scoring.py); and, for explained decisions, what each column adds to it."""

    def __init__(self, score: GroupedScorer, booster: lightgbm.Booster | None = None) -> None:
        self._score = score
        self._booster = booster  # the same model in LightGBM: only `contributions` uses it

    def contributions(self, rows: np.ndarray) -> np.ndarray:
        """(rows, FEATURES + 1): each column's contribution to each row's log-odds of
        converting, the model's bias last (they add up to the row's log-odds: SHAP values,
        by LightGBM's TreeSHAP). About 0.5 ms a call: for `explain`, not every decision."""
        if self._booster is None:
            raise ValueError("this scorer was made without its LightGBM model")
        return np.asarray(self._booster.predict(np.asarray(rows, dtype=np.float64),
                                                pred_contrib=True, num_threads=1))

    def probabilities(self, matrix: np.ndarray,
                      counts: Sequence[int] | None = None) -> np.ndarray:
        """One number per row of `matrix`: the rows of `offer_rows` (one user), or of
        `offer_rows_of` for users with `counts` candidate offers each. A user's rows share
        their user and context columns, so the compiled model evaluates the trees that read
        only those once per user (models/split_trees.py)."""
        return self._score(matrix, np.asarray([len(matrix) - 1] if counts is None else counts,
                                              dtype=np.intp))

    @classmethod
    def load(cls, model: ModelVersion, compiled: Path | None = None) -> OfferResponseScorer:
        """A version's model; one trained on other columns (an older FEATURES, or before
        the no-offer arm's category columns were 0) is refused: it would read these
        columns as others, or measure uplifts against the wrong arm."""
        graph = model.artifact("offer_response.onnx")
        marks = {mark.key: mark.value
                 for mark in onnx.load_model_from_string(graph).metadata_props}
        if marks.get(FEATURES_KEY) != FEATURES_MARK:
            raise ModelVersionError(
                f"model version {model.version}: its offer-response model was trained on "
                "other columns than this release scores; train a new version with "
                "`nbo train` and promote it")
        text = model.artifact("offer_response.txt").decode()  # parsed with the model's load
        return cls(grouped_scorer(model, "offer_response", len(FEATURES), SHARED_COLUMNS, compiled),
                   lightgbm.Booster(model_str=text))


DRIVERS = 8  # the columns an explanation names, by the size of what they add


def drivers(row: np.ndarray, contributions: np.ndarray) -> dict[str, list[dict[str, float | str]]]:
    """What mattered for an offer's `row`, from the `contributions` of it and of the
    no-offer row: the columns adding most to the log-odds of converting with the offer
    (`p_convert`), and those whose contributions differ most between the two rows
    (`uplift`: with the offer minus without), each with its value in the offer's row."""
    offer, none = contributions[0, :-1], contributions[1, :-1]

    def largest(added: np.ndarray) -> list[dict[str, float | str]]:
        return [{"feature": FEATURES[i], "value": round(float(row[i]), 4),
                 "contribution": round(float(added[i]), 4)}
                for i in np.argsort(-np.abs(added), kind="stable")[:DRIVERS] if added[i]]

    return {"p_convert": largest(offer), "uplift": largest(offer - none)}


def expected_value(p_with: np.ndarray, p_without: np.ndarray | float, cost: np.ndarray,
                   order_value: np.ndarray | float, margin: float) -> np.ndarray:
    """What sending an offer is worth: the orders it adds times their margin, minus its
    cost on every redemption (including those that would have happened anyway)."""
    return np.asarray((p_with - p_without) * order_value * margin - p_with * cost)


def worth_offering(value: np.ndarray) -> np.ndarray:
    """Which offers to make, by their expected value: none that loses money. One the model
    sees no effect of is still made when it costs nothing (a value of 0: a content block);
    leaving it out would throw away whatever it does that the model cannot see."""
    return np.asarray(value >= 0)
