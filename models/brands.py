"""The learned brand ranking at request time, for one user from their `UserState`.

The same candidates and signals as training/affinity/brands.py at a cut: the user's kept
brands plus the most popular brands of their top categories, scored by the LambdaRank
model; the ALS score folds the user into the trained brand factors (models/categories.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import accumulate
from pathlib import Path
from typing import cast

import numpy as np

from features.state import UserState
from features.store.layout import TOP_BRANDS, TOP_CATEGORIES
from models.categories import fold_in_users, ranker_artifacts, regularized_gram, top
from models.registry import ModelVersion
from models.tree_scoring import TreeScorer, score_each

SIGNALS = ("affinity", "affinity_share", "category_share", "popularity",
           "category_popularity", "als")
POPULAR_PER_CATEGORY = 5
CANDIDATE_CATEGORIES = 3


def _sold(row: dict[str, object]) -> float:
    """A popularity row's brand's share of all purchase lines, in its category."""
    return float(str(row["popularity"])) * float(str(row["category_popularity"]))


@dataclass(frozen=True)
class BrandRanker:
    score: TreeScorer  # the LambdaRank model
    category_of: dict[str, str]  # brand -> its category
    popularity: dict[str, tuple[float, float]]  # brand -> (share in its category, category's)
    popular: dict[str, list[str]]  # category -> its most popular brands
    als_index: dict[str, int]
    item_factors: np.ndarray
    gram: np.ndarray  # regularized_gram(item_factors)

    @classmethod
    def of(cls, score: TreeScorer, als_keys: list[str], item_factors: np.ndarray,
           popularity: list[dict[str, object]]) -> BrandRanker:
        rows = sorted(popularity, key=lambda r: (str(r["category"]),
                                                 -float(str(r["popularity"])), str(r["key"])))
        popular: dict[str, list[str]] = {}
        for row in rows:
            brands = popular.setdefault(str(row["category"]), [])
            if len(brands) < POPULAR_PER_CATEGORY:
                brands.append(str(row["key"]))
        # a brand's signals read its main category's row, the one it sells most in (ties:
        # the first by name), as training's (training/affinity/brands.py, `main`)
        main: dict[str, dict[str, object]] = {}
        for row in sorted(rows, key=lambda r: (-_sold(r), str(r["category"]))):
            main.setdefault(str(row["key"]), row)
        factors = np.asarray(item_factors, dtype=np.float64)
        return cls(score,
                   {key: str(row["category"]) for key, row in main.items()},
                   {key: (float(str(row["popularity"])), float(str(row["category_popularity"])))
                    for key, row in main.items()},
                   popular, {key: i for i, key in enumerate(als_keys)}, factors,
                   regularized_gram(factors))

    @classmethod
    def load(cls, model: ModelVersion, compiled: Path | None = None) -> BrandRanker:
        score, keys, factors, popularity = ranker_artifacts(model, "brand", len(SIGNALS),
                                                            compiled)
        return cls.of(score, keys, factors, cast(list[dict[str, object]], popularity))

    def signals(self, state: UserState, now: datetime) -> tuple[list[str], np.ndarray]:
        """The user's candidate brands (sorted) and their (candidates, SIGNALS)."""
        return self.signals_of([state], now)[0]

    def signals_of(self, states: Sequence[UserState],
                   now: datetime) -> list[tuple[list[str], np.ndarray]]:
        """`signals` of each user, every user folded into the ALS factors in one step."""
        found = [self._signals_but_als(state, now) for state in states]
        known = [[(self.als_index[b], w) for b, w in kept.items() if b in self.als_index]
                 for _, _, kept in found]
        users = fold_in_users(self.item_factors, self.gram,
                              [0, *accumulate(len(mine) for mine in known)],
                              np.array([i for mine in known for i, _ in mine], dtype=np.intp),
                              np.array([w for mine in known for _, w in mine], dtype=np.float64))
        for (candidates, matrix, _), mine, user in zip(found, known, users, strict=True):
            if mine:
                rows = np.array([self.als_index.get(b, -1) for b in candidates], dtype=np.int64)
                matrix[:, 5] = np.where(rows >= 0, self.item_factors[rows] @ user, 0.0)
        return [(candidates, matrix) for candidates, matrix, _ in found]

    def _signals_but_als(self, state: UserState,
                         now: datetime) -> tuple[list[str], np.ndarray, dict[str, float]]:
        """The user's candidate brands, their SIGNALS but the ALS score (0), and the kept
        brands' affinities."""
        kept = dict([(k, v) for k, v in state.values("brand_affinity", now) if v > 0]
                    [:TOP_BRANDS])
        top = [(k, v) for k, v in state.values("category_affinity", now) if v > 0][
            :TOP_CATEGORIES]
        total = sum(v for _, v in top)
        shares = {k: v / total for k, v in top}
        leading = sorted(shares, key=lambda c: -shares[c])[:CANDIDATE_CATEGORIES]
        candidates = sorted(set(kept) | {b for c in leading for b in self.popular.get(c, [])})
        kept_total = sum(kept.values()) or 1.0  # no kept brand: every affinity is 0
        matrix = np.zeros((len(candidates), len(SIGNALS)))
        if candidates:
            affinities = [kept.get(brand, 0.0) for brand in candidates]
            matrix[:, :5] = [(affinity, affinity / kept_total,
                              shares.get(self.category_of.get(brand, ""), 0.0),
                              *self.popularity.get(brand, (0.0, 0.0)))
                             for brand, affinity in zip(candidates, affinities, strict=True)]
        return candidates, matrix, kept

    def by_prior(self, categories: Sequence[str], n: int) -> list[tuple[str, float]]:
        """The n brands most bought overall among the most popular of `categories` (the
        first CANDIDATE_CATEGORIES), for a user with no history of their own, whose
        categories come from a prior: the ranker reads nothing in them."""
        candidates = {brand for category in categories[:CANDIDATE_CATEGORIES]
                      for brand in self.popular.get(category, [])}
        shares = {brand: within * overall
                  for brand, (within, overall) in self.popularity.items() if brand in candidates}
        return sorted(shares.items(), key=lambda pair: (-pair[1], pair[0]))[:n]

    def rank(self, state: UserState, now: datetime, n: int) -> list[tuple[str, float]]:
        return self.rank_of([state], now, n)[0]

    def rank_of(self, states: Sequence[UserState], now: datetime,
                n: int) -> list[list[tuple[str, float]]]:
        """`rank` of each user, all their candidates scored in one call."""
        found = self.signals_of(states, now)
        scores = score_each(self.score, [matrix for _, matrix in found])
        return [top(candidates, scored, n)
                for (candidates, _), scored in zip(found, scores, strict=True)]
