"""Similar items from implicit ALS on user x item interest, the item table, and their
evaluation."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from features.counts import CATEGORY_AFFINITY
from features.price_bands import PriceBands
from models.items import SIMILAR, SIMILAR_ARTIFACT, ItemInfo, ItemRecommender
from tests.conftest import SplitWorld
from training.affinity.item_evaluation import co_purchase_metrics, evaluate_items
from training.affinity.items import (
    ITEM_COLUMNS,
    ITEM_INTEREST,
    ItemModel,
    bought_items,
    item_table,
    nearest,
)
from training.cuts import FeaturesAt
from training.split import TimeSplit, between, up_to

START = datetime(2026, 1, 5)
SCHEMA = pl.Schema({"user_id": pl.String(), "ts": pl.Datetime("us"),
                    "event_type": pl.String(), "item_id": pl.String(), "category": pl.String(),
                    "brand": pl.String(), "price": pl.Float64(), "quantity": pl.Int64()})


def _events(rows: list[tuple[str, float, str, str, int]],
            catalog: pl.DataFrame) -> pl.DataFrame:
    """Events from (user, day, event type, item, quantity), the item's columns from
    `catalog`."""
    frame = pl.DataFrame([(u, START + timedelta(days=d), kind, item, q)
                          for u, d, kind, item, q in rows],
                         schema=["user_id", "ts", "event_type", "item_id", "quantity"],
                         orient="row")
    return frame.join(catalog, on="item_id", how="left").select(list(SCHEMA)).cast(SCHEMA)


def _catalog(items: dict[str, tuple[str, str, float]]) -> pl.DataFrame:
    return pl.DataFrame([(item, *about) for item, about in items.items()],
                        schema=list(ITEM_COLUMNS), orient="row")


def _brute_force(factors: np.ndarray, n: int) -> list[list[int]]:
    unit = factors / np.linalg.norm(factors, axis=1, keepdims=True)
    similarity = unit @ unit.T
    return [sorted((j for j in range(len(factors)) if j != i),
                   key=lambda j: (-similarity[i, j], j))[:n] for i in range(len(factors))]


def test_nearest_excludes_the_item_itself_and_sorts_by_cosine() -> None:
    factors = np.random.default_rng(3).normal(size=(50, 8))
    neighbours, scores = nearest(factors, 5, block=16)
    assert neighbours.dtype == np.int32 and scores.dtype == np.float32
    assert neighbours.tolist() == _brute_force(factors, 5)
    assert all(i not in row for i, row in enumerate(neighbours.tolist()))
    assert np.all(np.diff(scores, axis=1) <= 0)


def test_nearest_pads_and_leaves_empty_rows_out() -> None:
    factors = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 0.1], [0.0, 1.0]])
    neighbours, scores = nearest(factors, 5)
    assert neighbours.tolist() == [[2, 3, -1, -1, -1], [-1] * 5, [0, 3, -1, -1, -1],
                                   [2, 0, -1, -1, -1]]
    assert scores[0, 0] == pytest.approx(1 / np.sqrt(1.01), rel=1e-6)
    assert scores[1].tolist() == [0.0] * 5 and scores[0, 2:].tolist() == [0.0] * 3


CO_BOUGHT = {"tea": "cups", "cups": "tea", "tyres": "oil", "oil": "tyres", "paint": "brush",
             "brush": "paint"}


def _co_bought_world() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Three pairs of items, each bought together by its own 15 users, in one category."""
    catalog = _catalog({item: ("shop", f"brand-{item}", 10.0 + i)
                        for i, item in enumerate(CO_BOUGHT)})
    pairs = [("tea", "cups"), ("tyres", "oil"), ("paint", "brush")]
    rows = [(f"{first}{n}", float(n % 7), kind, item, 1)
            for first, second in pairs for n in range(15) for item in (first, second)
            for kind in ("view", "purchase")]
    return _events(rows, catalog), catalog


def test_als_puts_items_bought_together_next_to_each_other() -> None:
    events, catalog = _co_bought_world()
    anchor = START + timedelta(days=10)
    model = ItemModel.fit(events, catalog, PriceBands.from_prices(catalog), anchor, seed=1)
    assert model.neighbours.shape == (6, SIMILAR)
    recommender = ItemRecommender.from_artifacts(model.artifacts())
    for item, partner in CO_BOUGHT.items():
        similar = recommender.similar(item, 3)
        assert similar[0][0] == partner, (item, similar)
        assert item not in [other for other, _ in similar]
        assert [s for _, s in similar] == sorted((s for _, s in similar), reverse=True)


def test_the_same_data_and_seed_give_the_same_bytes(split_world: SplitWorld) -> None:
    fit = [ItemModel.fit(split_world.events, split_world.items, split_world.early.bands,
                         split_world.cut, seed=4).artifacts() for _ in range(2)]
    assert fit[0] == fit[1]
    # nothing after the anchor counts
    past = ItemModel.fit(up_to(split_world.events, split_world.cut), split_world.items,
                         split_world.early.bands, split_world.cut, seed=4).artifacts()
    assert past == fit[0]
    assert len(fit[0][SIMILAR_ARTIFACT]) < 200_000


def test_item_interest_has_the_category_affinity_weights(split_world: SplitWorld) -> None:
    with_items = split_world.events.filter(pl.col("item_id").is_not_null())
    anchor = split_world.cut
    categories = with_items.select("item_id", "category").unique()
    per_item = ITEM_INTEREST.batch(up_to(with_items, anchor), anchor).join(
        categories, left_on="key", right_on="item_id").group_by("user_id", "category").agg(
        pl.col("total").sum()).sort("user_id", "category")
    per_category = CATEGORY_AFFINITY.batch(up_to(with_items, anchor), anchor).sort(
        "user_id", "key")
    assert per_item["user_id"].to_list() == per_category["user_id"].to_list()
    assert per_item["category"].to_list() == per_category["key"].to_list()
    np.testing.assert_allclose(per_item["total"].to_numpy(), per_category["total"].to_numpy(),
                               rtol=1e-9)


def test_the_item_table_reads_the_catalog_then_the_events() -> None:
    catalog = _catalog({"a": ("tea", "leafy", 2.0), "b": ("tea", "leafy", 9.0),
                        "unseen": ("tea", "leafy", 5.0)})
    events = _events([("u1", 1, "purchase", "a", 1), ("u1", 20, "purchase", "a", 2),
                      ("u2", 25, "purchase", "a", 1), ("u2", 26, "purchase", "a", -1),
                      ("u3", 27, "view", "b", 1), ("u3", 27, "view", "z", 1)], catalog)
    events = events.with_columns(  # z is in no catalog: its columns come from its events
        category=pl.when(pl.col("item_id") == "z").then(pl.lit("tea")).otherwise("category"),
        brand=pl.when(pl.col("item_id") == "z").then(pl.lit("zed")).otherwise("brand"),
        price=pl.when(pl.col("item_id") == "z").then(pl.lit(4.0)).otherwise("price"))
    bands = PriceBands.from_prices(catalog)
    table = item_table(events, catalog, bands, START + timedelta(days=28), days=14)
    assert table.to_dicts() == [
        {"item_id": "a", "category": "tea", "brand": "leafy", "price": 2.0,
         "price_band": 0, "popularity": 2.0},
        {"item_id": "b", "category": "tea", "brand": "leafy", "price": 9.0,
         "price_band": 2, "popularity": 0.0},
        {"item_id": "z", "category": "tea", "brand": "zed", "price": 4.0,
         "price_band": bands.band("tea", 4.0), "popularity": 0.0},
    ]


def test_events_without_items_give_an_empty_model() -> None:
    catalog = _catalog({"a": ("tea", "leafy", 2.0)})
    events = _events([("u1", 1, "view", "a", 1)], catalog).with_columns(
        item_id=pl.lit(None, dtype=pl.String))
    model = ItemModel.fit(events, catalog, PriceBands.from_prices(catalog),
                          START + timedelta(days=2))
    recommender = ItemRecommender.from_artifacts(model.artifacts())
    assert recommender.items == () and recommender.for_user(["tea"], [], {"tea": "low"}, 3) == []


def test_co_purchase_hits_count_later_items_among_the_similar() -> None:
    info = {item: ItemInfo("tea", None, None, None, float(i)) for i, item in enumerate("abcd")}
    neighbours = np.array([[1, -1], [0, -1], [3, -1], [2, -1]], dtype=np.int32)
    recommender = ItemRecommender.of(list("abcd"), neighbours,
                                     np.ones((4, 2), dtype=np.float32), info)
    purchases = pl.DataFrame({"user_id": ["u", "u", "u", "v", "v"],
                              "ts": [START, START + timedelta(days=1), START + timedelta(days=2),
                                     START, START],
                              "key": ["a", "b", "c", "c", "d"]})
    metrics = co_purchase_metrics(recommender, purchases, n=1)
    # pairs: a->b (hit), a->c, b->c, c->d and d->c (same time: both ways, both hits)
    assert metrics["pairs"] == 5.0
    assert metrics["co_purchase_hit@1"] == pytest.approx(3 / 5)
    assert metrics["random_same_category_hit@1"] == pytest.approx(1 / 3)
    # the most popular other item of the category: d (c for d)
    assert metrics["category_popular_hit@1"] == pytest.approx(2 / 5)


def test_evaluation_runs_on_the_split(split_world: SplitWorld) -> None:
    events = split_world.events
    features = FeaturesAt(events, split_world.users, split_world.items)
    split = TimeSplit.last_days(events, eval_days=7, label_days=7)
    batch = features(split.eval_cut)
    scores = {name: batch.counts[f"{name}_affinity"].rename({"total": "score"})
              for name in ("category", "brand")}
    metrics = evaluate_items(features, split, split_world.items, scores["category"],
                             scores["brand"], seed=2)
    buyers = bought_items(between(events, split.eval_cut, split.end))["user_id"].n_unique()
    assert 0 < metrics["users"] <= buyers and metrics["pairs"] > 0
    assert all(0.0 <= value <= 1.0 for name, value in metrics.items()
               if name not in ("users", "pairs"))
    assert metrics["ndcg@10"] > 0
