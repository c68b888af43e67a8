"""How good the served item recommendations and similar items are, on the time split.

The recommender is built from the events up to `eval_cut` and scored on the evaluation
window, for users who bought an item there:

    for_user        fed as the decision feeds it: the user's USER_CATEGORIES best categories
                    and USER_BRANDS best brands by the trained rankers' scores at the cut,
                    and their price band in each (`category_bands`, as served)
    affinity_       the same, fed with the user's decayed category and brand affinity
    popularity_     the most popular items overall
    top_category_   the most popular items of the user's strongest category (affinity)

and for similar items, over pairs (a, b) of items a user bought in the window with b
bought no earlier than a: how often b is among a's SIMILAR nearest, against the expected
rate of as many random items of a's category, and a's category's most popular items.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

from features.pipeline import BatchFeatures
from features.price_bands import BANDS
from models.items import SIMILAR, USER_BRANDS, USER_CATEGORIES, ItemRecommender
from training.affinity.als import Factorization
from training.affinity.items import ItemModel, bought_items
from training.cuts import FeaturesAt
from training.price_bands import ServedBands
from training.ranking_metrics import ranking_metrics
from training.split import TimeSplit, between


def top_keys(scores: pl.DataFrame, limit: int, column: str = "score") -> dict[str, list[str]]:
    """user -> their `limit` best keys by `column` (ties by key)."""
    best = (scores.sort("user_id", column, "key", descending=[False, True, False])
            .filter(pl.int_range(pl.len()).over("user_id") < limit)
            .group_by("user_id", maintain_order=True).agg("key"))
    return dict(zip(best["user_id"], best["key"].to_list(), strict=True))


def _as_scores(lists: Mapping[str, Sequence[str]]) -> pl.DataFrame:
    """(user_id, key, score) with score = -position, so the list order is the ranking."""
    rows = [(user, item, -float(position)) for user, items in lists.items()
            for position, item in enumerate(items)]
    return pl.DataFrame(rows, schema={"user_id": pl.String, "key": pl.String,
                                      "score": pl.Float64}, orient="row")


def recommendation_metrics(recommender: ItemRecommender, batch: BatchFeatures,
                           categories: Mapping[str, Sequence[str]],
                           brands: Mapping[str, Sequence[str]], relevant: pl.DataFrame,
                           k: int) -> dict[str, float]:
    """NDCG@k and recall@k of `for_user` (fed `categories` and `brands` per user) and of
    the baselines, over the users in `categories` with a relevant (user_id, key)."""
    users = sorted(set(relevant["user_id"]) & set(categories))
    served = ServedBands.of(batch)

    def bands(user: str, ranked: Sequence[str]) -> dict[str, str]:
        """The user's band in each category fed to `for_user`, as served."""
        return {category: BANDS[band] for category, band
                in served.category_bands(user, ranked[:USER_CATEGORIES]).items()}

    affinity = top_keys(batch.counts["category_affinity"], USER_CATEGORIES, "total")
    brand_affinity = top_keys(batch.counts["brand_affinity"], USER_BRANDS, "total")
    popular = recommender.for_user([], [], {}, k)
    rankings = {
        "": {u: recommender.for_user(categories[u], brands.get(u, []),
                                     bands(u, categories[u]), k) for u in users},
        "affinity_": {u: recommender.for_user(affinity.get(u, []), brand_affinity.get(u, []),
                                              bands(u, affinity.get(u, [])), k) for u in users},
        "popularity_": dict.fromkeys(users, popular),
        "top_category_": {u: recommender.for_user(affinity.get(u, [])[:1], [], {}, k)
                          for u in users},
    }
    wanted = relevant.filter(pl.col("user_id").is_in(users))
    metrics: dict[str, float] = {"users": float(len(users))}
    for name, lists in rankings.items():
        result = ranking_metrics(_as_scores(lists), wanted, k)
        metrics[f"{name}ndcg@{k}"] = result[f"ndcg@{k}"]
        metrics[f"{name}recall@{k}"] = result[f"recall@{k}"]
    return metrics


def co_purchase_metrics(recommender: ItemRecommender, purchases: pl.DataFrame,
                        n: int = SIMILAR) -> dict[str, float]:
    """Hit rates on the pairs of items bought by the same user (`bought_items` rows)."""
    first = purchases.group_by("user_id", "key").agg(pl.col("ts").min())
    pairs = (first.join(first, on="user_id", suffix="_next")
             .filter((pl.col("key") != pl.col("key_next")) & (pl.col("ts") <= pl.col("ts_next"))
                     & pl.col("key").is_in(list(recommender.row)))
             .select("key", "key_next").sort("key", "key_next"))
    sizes: dict[str, int] = {}
    for about in recommender.info.values():
        if about.category is not None:
            sizes[about.category] = sizes.get(about.category, 0) + 1
    similar = {item: {other for other, _ in recommender.similar(item, n)}
               for item in pairs["key"].unique()}
    hits = random = popular = 0.0
    for item, then in pairs.iter_rows():
        category = recommender.info[item].category if item in recommender.info else None
        hits += then in similar[item]
        if category is None:
            continue
        if then in recommender.info and recommender.info[then].category == category:
            random += min(1.0, n / max(sizes[category] - 1, 1))
        popular += then in [i for i in recommender.popular[category] if i != item][:n]
    count = max(pairs.height, 1)
    return {"pairs": float(pairs.height), f"co_purchase_hit@{n}": hits / count,
            f"random_same_category_hit@{n}": random / count,
            f"category_popular_hit@{n}": popular / count}


def evaluate_items(features: FeaturesAt, split: TimeSplit, catalog: pl.DataFrame,
                   category_scores: pl.DataFrame, brand_scores: pl.DataFrame, seed: int = 0,
                   k: int = 10, factorization: Factorization = "als") -> dict[str, float]:
    """The recommender from the events up to `eval_cut`, fed by the rankers' scores there
    ((user_id, key, score) frames), scored on the evaluation window."""
    events, batch = features.events, features(split.eval_cut)
    model = ItemModel.fit(events, catalog, batch.bands, split.eval_cut, seed, factorization)
    recommender = ItemRecommender.from_artifacts(model.artifacts())
    purchases = bought_items(between(events, split.eval_cut, split.end))
    relevant = purchases.select("user_id", "key").unique()
    return {**recommendation_metrics(recommender, batch,
                                     top_keys(category_scores, USER_CATEGORIES),
                                     top_keys(brand_scores, USER_BRANDS), relevant, k),
            **co_purchase_metrics(recommender, purchases)}
