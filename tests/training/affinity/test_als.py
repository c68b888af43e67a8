import polars as pl

from training.affinity.als import AlsScores


def test_a_user_gets_the_keys_that_users_like_them_like() -> None:
    rows = [(f"tea{n}", key, 5.0) for n in range(20) for key in ("tea", "cups")] + [
        (f"car{n}", key, 5.0) for n in range(20) for key in ("tyres", "oil")] + [
        ("newcomer", "tea", 5.0)]
    interactions = pl.DataFrame(rows, schema=["user_id", "key", "weight"], orient="row")
    model = AlsScores.fit(interactions, factors=2, iterations=20, seed=1)
    pairs = pl.DataFrame({"user_id": ["newcomer"] * 3 + ["stranger"],
                          "key": ["cups", "tyres", "oil", "tea"]})
    cups, tyres, oil, unknown = model.score(pairs)
    assert cups > max(tyres, oil) and unknown == 0.0
