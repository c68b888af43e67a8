"""The served item recommender: loading, recommendations for a user, similar items."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import polars as pl
import pytest

from models.items import (
    ARTIFACTS,
    OVERALL,
    SIMILAR,
    SIMILAR_ARTIFACT,
    TABLE_ARTIFACT,
    ItemInfo,
    ItemRecommender,
)
from models.registry import ModelVersion, ModelVersionError
from tests.conftest import SplitWorld
from training.affinity.items import ItemModel


@pytest.fixture(scope="module")
def fitted(split_world: SplitWorld) -> ItemModel:
    return ItemModel.fit(split_world.events, split_world.items, split_world.early.bands,
                         split_world.cut, seed=1)


def test_a_version_loads_what_training_wrote(fitted: ItemModel, tmp_path: Path) -> None:
    for name, content in fitted.artifacts().items():
        (tmp_path / name).write_bytes(content)
    recommender = ItemRecommender.load(ModelVersion("v1", tmp_path, {}, {}))
    assert recommender.items == tuple(fitted.items)
    for row, item in enumerate(fitted.items[:50]):
        expected = [(fitted.items[j], float(s)) for j, s in zip(
            fitted.neighbours[row].tolist(), fitted.scores[row].tolist(), strict=True)
            if j >= 0]
        assert recommender.similar(item, SIMILAR) == expected
        assert recommender.similar(item, 3) == expected[:3]
    table = fitted.table.to_dicts()
    assert len(recommender.info) == len(table)
    for fields in table:
        about = recommender.info[fields["item_id"]]
        assert (about.category, about.brand, about.price, about.band, about.popularity) == (
            fields["category"], fields["brand"], fields["price"], fields["price_band"],
            fields["popularity"])
    assert len(recommender.for_user([], [], {}, 10)) == 10


def test_similar_for_an_unknown_item_or_no_room_is_empty(fitted: ItemModel) -> None:
    recommender = ItemRecommender.from_artifacts(fitted.artifacts())
    assert recommender.similar("no such item", 5) == []
    assert recommender.similar(fitted.items[0], 0) == []


def test_artifacts_that_do_not_fit_together_are_refused(fitted: ItemModel) -> None:
    artifacts = fitted.artifacts()
    table = orjson.loads(artifacts[TABLE_ARTIFACT])
    del table["popularity"]
    with pytest.raises(ModelVersionError, match="retrain"):
        ItemRecommender.from_artifacts({**artifacts, TABLE_ARTIFACT: orjson.dumps(table)})
    shorter = ItemModel(fitted.items[:-1], fitted.neighbours, fitted.scores, fitted.table)
    with pytest.raises(ModelVersionError, match="retrain"):
        ItemRecommender.from_artifacts({**artifacts,
                                        SIMILAR_ARTIFACT: shorter.artifacts()[SIMILAR_ARTIFACT]})
    assert set(artifacts) == set(ARTIFACTS)


def _shop() -> ItemRecommender:
    """Three categories (a, b, c) of 12 items each: item a0 the most popular of a, a11 the
    least; within a category, brand "x" on items 9..11 and price bands 0, 1, 2 in turn."""
    info = {f"{c}{i}": ItemInfo(c, "x" if i >= 9 else "y", float(i), i % 3,
                                float(100 - i - 20 * k))
            for k, c in enumerate("abc") for i in range(12)}
    items = sorted(info)
    none = np.full((len(items), 0), -1, dtype=np.int32)
    return ItemRecommender.of(items, none, none.astype(np.float32), info)


def test_for_user_respects_n_and_exclusions() -> None:
    shop = _shop()
    assert shop.for_user(["a", "b"], [], {}, 0) == []
    assert len(shop.for_user(["a", "b"], [], {}, 1)) == 1
    five = shop.for_user(["a", "b"], [], {}, 5)
    assert len(five) == len(set(five)) == 5
    everything = shop.for_user(["a", "b", "c"], [], {}, 100)
    assert sorted(everything) == sorted(shop.info)  # 36 items < n
    excluded = shop.for_user(["a"], [], {}, 5, exclude={"a0", "a2"})
    assert excluded == ["a1", "a3", "a4", "a5", "a6"]


def test_similar_skips_the_padding_of_items_with_few_neighbours() -> None:
    """Rows of the neighbour matrix end in -1 past an item's last neighbour."""
    info = {item: ItemInfo("a", "x", 1.0, 0, 1.0) for item in "abc"}
    neighbours = np.array([[1, -1], [0, -1], [-1, -1]], dtype=np.int32)
    scores = np.array([[0.9, 0.0], [0.9, 0.0], [0.0, 0.0]], dtype=np.float32)
    shop = ItemRecommender.of(["a", "b", "c"], neighbours, scores, info)
    assert [(item, round(score, 3)) for item, score in shop.similar("a", 2)] == [("b", 0.9)]
    assert shop.similar("c", 5) == []


def test_for_user_fills_from_overall_popularity_without_the_excluded() -> None:
    shop = _shop()
    first = shop.for_user([], [], {}, 3)
    assert len(first) == 3
    again = shop.for_user([], [], {}, 3, exclude={first[0]})
    assert first[0] not in again and len(again) == 3


def test_for_user_interleaves_categories_the_better_with_the_larger_share() -> None:
    ranked = _shop().for_user(["b", "a", "c"], [], {}, 10)
    assert [item[0] for item in ranked] == list("bbabbacbba")
    assert [item for item in ranked if item[0] == "b"] == ["b0", "b1", "b2", "b3", "b4", "b5"]
    # a category that runs out leaves its turns to the others
    assert [item[0] for item in _shop().for_user(["a", "b"], [], {}, 24)].count("b") == 12


def test_for_user_prefers_the_top_brands_and_the_price_band() -> None:
    shop = _shop()
    assert shop.for_user(["a"], ["x"], {}, 3) == ["a9", "a10", "a11"]
    assert shop.for_user(["a"], [], {"a": "high"}, 3) == ["a2", "a5", "a8"]
    # both: the brand's item in the band first
    assert shop.for_user(["a"], ["x"], {"a": "mid", "b": "low"}, 2) == ["a10", "a9"]


def test_a_kept_category_order_answers_as_a_new_one() -> None:
    """Orders are kept per (category, the top brands it has items of, band): later users
    with the same get the same answer as a recommender that never saw anyone."""
    shop = _shop()
    asked = [(["a", "b"], ["x", "z"], {"a": "mid"}), (["b", "a"], ["z", "x"], {"a": "mid"}),
             (["a"], ["y", "x"], {}), (["a"], ["x", "y"], {"a": "low"}), (["c"], [], {})]
    for categories, brands, bands in [*asked, *asked]:
        assert shop.for_user(categories, brands, bands, 8) == _shop().for_user(
            categories, brands, bands, 8)
    assert len(shop._orders) == 5  # the second call shares both of the first one's


def test_for_user_passes_over_what_it_does_not_know() -> None:
    shop = _shop()
    popular = shop.for_user([], [], {}, 5)
    assert popular == ["a0", "a1", "a2", "a3", "a4"]
    assert shop.for_user(["nope", "gone"], ["no brand"], {}, 5) == popular
    assert shop.for_user(["nope", "b"], ["no brand"], {"b": "not a band"}, 3) == ["b0", "b1", "b2"]
    assert shop.for_user(["b", "b"], [], {}, 3) == ["b0", "b1", "b2"]


def test_popularity_orders_items_within_a_category_and_overall(fitted: ItemModel) -> None:
    recommender = ItemRecommender.from_artifacts(fitted.artifacts())
    top = fitted.table.sort("popularity", "item_id", descending=[True, False])
    assert recommender.overall == tuple(top["item_id"].head(OVERALL))
    category = str(top["category"][0])
    ranked = recommender.for_user([category], [], {}, 10)
    own = fitted.table.filter(pl.col("category") == category).sort(
        "popularity", "item_id", descending=[True, False])["item_id"].head(10).to_list()
    assert ranked == own
