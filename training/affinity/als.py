"""Collaborative filtering: implicit ALS on user x key (category, brand, item) interactions.

Confidence is the user's decayed, weighted interest in the key (the affinity features);
a user's score for a key is the dot product of their factors, so keys a user never
touched still get a score from users like them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import scipy.sparse as sparse
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from models.categories import ALS_REGULARIZATION


@dataclass(frozen=True)
class AlsScores:
    users: dict[str, int]
    keys: dict[str, int]
    user_factors: np.ndarray
    item_factors: np.ndarray

    @classmethod
    def fit(cls, interactions: pl.DataFrame, factors: int = 16, iterations: int = 15,
            regularization: float = ALS_REGULARIZATION, seed: int = 0) -> AlsScores:
        """From (user_id, key, weight) rows with positive weights."""
        positive = interactions.filter(pl.col("weight") > 0)
        users = {u: i for i, u in enumerate(positive["user_id"].unique().sort())}
        keys = {k: i for i, k in enumerate(positive["key"].unique().sort())}
        rows = positive["user_id"].replace_strict(users, return_dtype=pl.Int64).to_numpy()
        cols = positive["key"].replace_strict(keys, return_dtype=pl.Int64).to_numpy()
        matrix = sparse.csr_matrix(
            (positive["weight"].to_numpy().astype(np.float32), (rows, cols)),
            shape=(len(users), len(keys)))
        with threadpool_limits(1, "blas"):  # BLAS threads inside ALS's own only slow it down
            model = AlternatingLeastSquares(factors=min(factors, max(1, len(keys) - 1)),
                                            regularization=regularization,
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
