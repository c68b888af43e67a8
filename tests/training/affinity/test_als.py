import numpy as np
import polars as pl
import pytest

from models.categories import ALS_REGULARIZATION, fold_in, regularized_gram
from training.affinity.als import AlsScores, Factorization


@pytest.mark.parametrize("factorization", ["als", "bpr"])
def test_a_user_gets_the_keys_that_users_like_them_like(factorization: Factorization) -> None:
    rows = [(f"tea{n}", key, 5.0) for n in range(20) for key in ("tea", "cups")] + [
        (f"car{n}", key, 5.0) for n in range(20) for key in ("tyres", "oil")] + [
        ("newcomer", "tea", 5.0)]
    interactions = pl.DataFrame(rows, schema=["user_id", "key", "weight"], orient="row")
    model = AlsScores.fit(interactions, factors=2, iterations=20, seed=1,
                          factorization=factorization)
    pairs = pl.DataFrame({"user_id": ["newcomer"] * 3 + ["stranger"],
                          "key": ["cups", "tyres", "oil", "tea"]})
    cups, tyres, oil, unknown = model.score(pairs)
    assert cups > max(tyres, oil) and unknown == 0.0


def test_bpr_users_are_folded_in_as_serving_folds_them() -> None:
    rows = [(f"u{n}", key, float(1 + (n + i) % 4)) for n in range(30)
            for i, key in enumerate(("a", "b", "c", "d", "e")) if (n + i) % 3]
    interactions = pl.DataFrame(rows, schema=["user_id", "key", "weight"], orient="row")
    model = AlsScores.fit(interactions, factors=3, seed=2, factorization="bpr")
    assert model.item_factors.shape == (5, 4)  # BPR's key bias is a factor column
    gram = regularized_gram(model.item_factors, ALS_REGULARIZATION)
    for user, row in model.users.items():
        mine = interactions.filter(pl.col("user_id") == user)
        keys = np.array([model.keys[key] for key in mine["key"]])
        served = fold_in(model.item_factors, gram, keys, mine["weight"].to_numpy())
        np.testing.assert_allclose(model.user_factors[row], served, rtol=1e-6, atol=1e-9)
    again = AlsScores.fit(interactions, factors=3, seed=2, factorization="bpr")
    np.testing.assert_array_equal(again.item_factors, model.item_factors)  # repeatable
