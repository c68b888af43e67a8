"""Collaborative filtering: implicit ALS on user x key (category, brand, item) interactions,
or BPR (`nbo train --factorization bpr`).

Confidence is the user's decayed, weighted interest in the key (the affinity features);
a user's score for a key is the dot product of their factors, so keys a user never
touched still get a score from users like them. Serving folds a user into the key factors
by the ALS user update (models/categories.py `fold_in_users`). ALS's own user factors are that
update; BPR learns the key factors (with a bias column) by pairwise ranking instead, and
its users are folded in here exactly as serving does, so the rankers learn from the
scores they are served.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl
import scipy.sparse as sparse
from implicit.cpu.als import AlternatingLeastSquares
from implicit.cpu.bpr import BayesianPersonalizedRanking
from threadpoolctl import threadpool_limits

from models.categories import ALS_REGULARIZATION, fold_in_users, regularized_gram

Factorization = Literal["als", "bpr"]
BPR_ITERATIONS = 100
FOLD_IN_USERS = 4_096  # users folded in per step: their gathered item rows stay small


def folded_in(matrix: sparse.csr_matrix, item_factors: np.ndarray,
              regularization: float) -> np.ndarray:
    """Every row's user factors as serving computes them from the user's confidences."""
    gram = regularized_gram(item_factors, regularization)
    steps = [matrix[start:start + FOLD_IN_USERS]
             for start in range(0, matrix.shape[0], FOLD_IN_USERS)]
    return np.vstack([np.zeros((0, item_factors.shape[1])),
                      *(fold_in_users(item_factors, gram, step.indptr, step.indices,
                                      step.data.astype(np.float64)) for step in steps)])


@dataclass(frozen=True)
class AlsScores:
    users: dict[str, int]
    keys: dict[str, int]
    user_factors: np.ndarray
    item_factors: np.ndarray

    @classmethod
    def fit(cls, interactions: pl.DataFrame, factors: int = 16, iterations: int = 15,
            regularization: float = ALS_REGULARIZATION, seed: int = 0,
            factorization: Factorization = "als") -> AlsScores:
        """From (user_id, key, weight) rows with positive weights; `iterations` are ALS's
        (BPR runs BPR_ITERATIONS epochs)."""
        positive = interactions.filter(pl.col("weight") > 0)
        users = {u: i for i, u in enumerate(positive["user_id"].unique().sort())}
        keys = {k: i for i, k in enumerate(positive["key"].unique().sort())}
        rows = positive["user_id"].replace_strict(users, return_dtype=pl.Int64).to_numpy()
        cols = positive["key"].replace_strict(keys, return_dtype=pl.Int64).to_numpy()
        matrix = sparse.csr_matrix(
            (positive["weight"].to_numpy().astype(np.float32), (rows, cols)),
            shape=(len(users), len(keys)))
        size = min(factors, max(1, len(keys) - 1))
        with threadpool_limits(1, "blas"):  # BLAS threads inside ALS's own only slow it down
            if factorization == "bpr":
                ranking = BayesianPersonalizedRanking(factors=size, iterations=BPR_ITERATIONS,
                                                      random_state=seed, num_threads=1)
                ranking.fit(matrix, show_progress=False)
                item_factors = np.asarray(ranking.item_factors, dtype=np.float64)
                return cls(users, keys, folded_in(matrix, item_factors, regularization),
                           item_factors)
            model = AlternatingLeastSquares(factors=size, regularization=regularization,
                                            iterations=iterations, random_state=seed,
                                            num_threads=1)
            model.fit(matrix, show_progress=False)
        return cls(users, keys, np.asarray(model.user_factors), np.asarray(model.item_factors))

    def score(self, pairs: pl.DataFrame) -> np.ndarray:
        """Scores for (user_id, key) rows; 0 for users or keys the model has not seen."""
        users = pairs["user_id"].replace_strict(self.users, default=-1,
                                                return_dtype=pl.Int64).to_numpy()
        keys = pairs["key"].replace_strict(self.keys, default=-1,
                                           return_dtype=pl.Int64).to_numpy()
        known = (users >= 0) & (keys >= 0)
        scores = np.zeros(len(pairs), dtype=np.float64)
        scores[known] = np.einsum("ij,ij->i", self.user_factors[users[known]],
                                  self.item_factors[keys[known]])
        return scores
