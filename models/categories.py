"""The learned category ranking at request time, for one user from their `UserState`.

The signals are the ones training/affinity/signals.py computes for many users at a cut,
here from the served state at `now`. The collaborative-filtering score folds the user
into the trained ALS item factors (one small least-squares solve, as an ALS user step
does), so users the model never saw, and live changes, still get one.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from itertools import pairwise
from pathlib import Path
from typing import cast

import numpy as np
from scipy.linalg.lapack import dposv as cholesky_solve

from features.cycles import DEFAULT_CYCLE
from features.state import UserState
from models.registry import ModelVersion
from models.tree_scoring import TreeScorer, tree_scorer

SIGNALS = ("affinity", "affinity_share", "occasions", "days_since_purchase", "due",
           "recent_rank", "popularity", "als", "user_occasions")
CATEGORY_PRIORS = "category_priors.json"
ALS_REGULARIZATION = 0.05
DAY_SECONDS = 86_400.0


def regularized_gram(item_factors: np.ndarray,
                     regularization: float = ALS_REGULARIZATION) -> np.ndarray:
    """Y'Y + reg I, the part of every user's ALS step that is the same for all users:
    computed once per model, not per fold-in."""
    return np.asarray(item_factors.T @ item_factors
                      + regularization * np.eye(item_factors.shape[1]))


def fold_in(item_factors: np.ndarray, gram: np.ndarray, rows: np.ndarray,
            confidence: np.ndarray) -> np.ndarray:
    """A user's ALS factors given the items': argmin over x of
    sum_i c_i (p_i - x.y_i)^2 + reg |x|^2, with c_i the confidence of the user's items
    (`rows`), p_i = 1 there and c = 1, p = 0 elsewhere (implicit's weighting). `gram` is
    `regularized_gram(item_factors, reg)`."""
    return np.asarray(fold_in_users(item_factors, gram, np.array([0, len(rows)]), rows,
                                    confidence)[0])


def fold_in_users(item_factors: np.ndarray, gram: np.ndarray,
                  starts: Sequence[int] | np.ndarray, rows: np.ndarray,
                  confidence: np.ndarray) -> np.ndarray:
    """(users, factors): `fold_in` of each user, their items and confidences one user after
    another in `rows` and `confidence`, user u's at starts[u]:starts[u + 1] (a CSR matrix's
    indptr, indices and data). Each user's system is built and solved on its own, so a
    user's factors do not depend on who else is folded in.

    The system, gram + Y_u'(C_u - I)Y_u, is positive definite (every item weighs its
    confidence > 0, plus the regularization), so LAPACK's Cholesky solve takes it: about a
    third of the cost of a general solve, and, called per user, none of the overhead of
    stacking systems of a few items each (a lone user folds in about 3x cheaper)."""
    found = np.zeros((len(starts) - 1, item_factors.shape[1]))
    chosen = item_factors[rows]
    weighted = chosen * np.asarray(confidence, dtype=np.float64)[:, None]
    for user, (start, end) in enumerate(pairwise(np.asarray(starts).tolist())):
        if start == end:
            continue
        mine, theirs = chosen[start:end], weighted[start:end]  # Y_u, C_u Y_u
        system, target = gram + mine.T @ (theirs - mine), theirs.sum(axis=0)
        _, solution, not_positive = cholesky_solve(system, target)
        found[user] = np.linalg.solve(system, target) if not_positive else solution
    return found


def ranker_artifacts(model: ModelVersion, name: str, features: int,
                     compiled: Path | None) -> tuple[TreeScorer, list[str], np.ndarray, object]:
    """A ranker's scorer (`{name}_ranker`: models/tree_scoring.py), ALS keys and item
    factors (`{name}_als.npz`), and popularity table (`{name}_popularity.json`)."""
    factors = np.load(io.BytesIO(model.artifact(f"{name}_als.npz")), allow_pickle=False)
    return (tree_scorer(model, f"{name}_ranker", features, compiled),
            [str(key) for key in factors["keys"]], factors["item_factors"],
            json.loads(model.artifact(f"{name}_popularity.json")))


def _ranked(shares: Mapping[str, float]) -> list[tuple[str, float]]:
    """Every key of `shares`, the largest share first (ties in key order)."""
    keys = sorted(shares)
    return top(keys, np.array([shares[key] for key in keys], dtype=np.float64), len(keys))


def top(keys: Sequence[str], scores: np.ndarray, n: int) -> list[tuple[str, float]]:
    """The n best keys by score, ties in key order."""
    order = np.lexsort((np.arange(len(scores)), -scores))[:n]
    return [(keys[i], float(scores[i])) for i in order]


@dataclass(frozen=True)
class CategoryRanker:
    score: TreeScorer  # the LambdaRank model
    categories: tuple[str, ...]  # the candidates: every category the model knows
    popularity: np.ndarray  # (categories,) share of purchase lines
    item_factors: np.ndarray  # (categories, factors), rows in `categories` order
    gram: np.ndarray  # regularized_gram(item_factors)
    country_priors: Mapping[str, list[tuple[str, float]]]  # country -> its categories by
    # their share of its buying, the largest first (ranked once, at load)
    global_prior: list[tuple[str, float]]  # every category by its share of all buying
    # (every category bought: the ranker's popularity counts the kept last few)

    @classmethod
    def of(cls, score: TreeScorer, als_keys: list[str], item_factors: np.ndarray,
           popularity: dict[str, float],
           country_priors: Mapping[str, Mapping[str, float]] | None = None,
           global_prior: Mapping[str, float] | None = None) -> CategoryRanker:
        categories = tuple(sorted(set(popularity) | set(als_keys)))
        index = {key: i for i, key in enumerate(als_keys)}
        items = np.asarray(item_factors, dtype=np.float64)
        aligned = np.array([items[index[c]] if c in index else np.zeros(items.shape[1])
                            for c in categories]).reshape(len(categories), items.shape[1])
        return cls(score, categories,
                   np.array([popularity.get(c, 0.0) for c in categories]), aligned,
                   regularized_gram(aligned),
                   {country: _ranked(shares) for country, shares in (country_priors or {}).items()},
                   _ranked(global_prior or popularity))

    @classmethod
    def load(cls, model: ModelVersion, compiled: Path | None = None) -> CategoryRanker:
        score, keys, factors, popularity = ranker_artifacts(model, "category", len(SIGNALS),
                                                            compiled)
        priors = (json.loads(model.artifact(CATEGORY_PRIORS))
                  if (model.path / CATEGORY_PRIORS).is_file() else {})
        return cls.of(score, keys, factors, cast(dict[str, float], popularity),
                      priors.get("country"), priors.get("global"))

    def by_prior(self, country: str, n: int) -> list[tuple[str, float]]:
        """The n categories most bought in `country` (training/affinity/priors.py), else
        over all users where the model has no prior for it: for a user with no history of
        their own (the ranker, trained on users with one, reads nothing in them)."""
        return self.country_priors.get(country, self.global_prior)[:n]

    @cached_property
    def _rows(self) -> dict[str, int]:
        return {category: row for row, category in enumerate(self.categories)}

    def signals(self, state: UserState, now: datetime,
                cycles: Mapping[str, float]) -> np.ndarray:
        """(categories, SIGNALS): what the ranker reads, NaN where training has nulls."""
        return np.asarray(self.signals_of([state], now, cycles)[0])

    def signals_of(self, states: Sequence[UserState], now: datetime,
                   cycles: Mapping[str, float]) -> np.ndarray:
        """(users, categories, SIGNALS): `signals` of each user, the same for any users."""
        n, row_of = len(self.categories), self._rows
        weights = np.zeros((len(states), n))
        matrix = np.full((len(states), n, len(SIGNALS)), np.nan)
        matrix[:, :, 2] = 0.0
        starts, observed, confidence = [0], [], []  # what fold_in_users reads
        for user, state in enumerate(states):
            for category, value in state.counts_at("category_affinity", now).items():
                if (row := row_of.get(category)) is not None:
                    weights[user, row] = value  # decayed counts are never below zero
                    if value > 0:
                        observed.append(row)
                        confidence.append(value)
            starts.append(len(observed))
            for category, tally in state.category_purchases.items():
                if (row := row_of.get(category)) is not None:
                    matrix[user, row, 2] = tally.occasions
                    if tally.last is not None:
                        matrix[user, row, 3] = (now - tally.last).total_seconds() / DAY_SECONDS
                    due = DEFAULT_CYCLE.due(tally, cycles.get(category), now)
                    matrix[user, row, 4] = np.nan if due is None else due
            for rank, category in enumerate(state.session.recent_categories):
                if (row := row_of.get(category)) is not None:
                    matrix[user, row, 5] = rank
        total = weights.sum(axis=1, keepdims=True)
        matrix[:, :, 0] = weights
        matrix[:, :, 1] = np.divide(weights, total, out=np.zeros_like(weights),
                                    where=total > 0)
        matrix[:, :, 6] = self.popularity
        users = fold_in_users(self.item_factors, self.gram, starts,
                              np.array(observed, dtype=np.intp),
                              np.array(confidence, dtype=np.float64))
        for user, factors in enumerate(users):
            matrix[user, :, 7] = self.item_factors @ factors
        matrix[:, :, 8] = np.array([state.purchases.occasions for state in states],
                                   dtype=np.float64)[:, None]
        return matrix

    def rank(self, state: UserState, now: datetime, cycles: Mapping[str, float],
             n: int) -> list[tuple[str, float]]:
        """The n likeliest categories to be bought next, with their ranker scores."""
        return self.rank_of([state], now, cycles, n)[0]

    def rank_of(self, states: Sequence[UserState], now: datetime, cycles: Mapping[str, float],
                n: int) -> list[list[tuple[str, float]]]:
        """`rank` of each user, all their signals scored in one call."""
        signals = self.signals_of(states, now, cycles)  # every user has a row per category
        scores = self.score(signals.reshape(-1, len(SIGNALS))).reshape(signals.shape[:2])
        return [top(self.categories, found, n) for found in scores]
