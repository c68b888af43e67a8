"""Item recommendations and similar items at request time, from two small artifacts.

    item_similar.npz       the items the ALS model knows and, per item, its nearest items
                           by cosine of the item factors (index matrix, -1 past the end)
                           with their scores (training/affinity/items.py)
    item_popularity.json   the item table, column-wise: category, brand, price, price band
                           and purchase lines over a recent window

The store keeps no per-user item history, so a user's items come from what the decision
already knows: their ranked categories and brands and their price band in each category.
Per category, the popular items, with those of a top brand and in the user's band first,
interleaved across the categories (the better ranked with the larger share). The
per-category lists are built at load, and a category's order for a band and the top brands
it has items of is kept once sorted (users share them), so a request is mostly dict
lookups.
"""

from __future__ import annotations

import io
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import orjson

from features.price_bands import BANDS
from models.registry import ModelVersion, ModelVersionError

SIMILAR_ARTIFACT = "item_similar.npz"
SIMILAR = 20  # neighbours kept per item: the most `GET /v1/items/{id}/similar` gives
TABLE_ARTIFACT = "item_popularity.json"
ARTIFACTS = (SIMILAR_ARTIFACT, TABLE_ARTIFACT)
TABLE_COLUMNS = ("item_id", "category", "brand", "price", "price_band", "popularity")
USER_CATEGORIES, USER_BRANDS = 3, 4  # how much of the rankers' output to pass (evaluated so)
PER_CATEGORY = 30  # the popular candidates of a category
PER_BRAND = 10  # a top brand's own popular items, added to its category's candidates
OVERALL = 100  # the most popular items overall, to fill a short list
CATEGORY_DECAY = 0.5  # each category's share of the list, relative to the one before
BRAND_BOOST = 3.0  # weights on the popularity (relative to the category's most popular)
BAND_BOOST = 1.5
POPULARITY_FLOOR = 0.01  # so boosts still order items bought too rarely to count
MAX_ORDERS = 50_000  # candidate lists kept per model (a few MB); all dropped when full


@dataclass(frozen=True)
class ItemInfo:
    category: str | None
    brand: str | None
    price: float | None
    band: int | None  # 0..2 (features/price_bands.py), None without a price or category
    popularity: float  # purchase lines in the table's window


def _ranked(items: Sequence[str], info: Mapping[str, ItemInfo]) -> list[str]:
    return sorted(items, key=lambda item: (-info[item].popularity, item))


@dataclass(frozen=True)
class ItemRecommender:
    items: tuple[str, ...]  # the rows of `neighbours`
    row: Mapping[str, int]  # item -> its row
    neighbours: np.ndarray  # (items, N) int32 rows of the nearest items, best first; -1 none
    scores: np.ndarray  # (items, N) float32 cosine similarities
    info: Mapping[str, ItemInfo]
    popular: Mapping[str, tuple[str, ...]]  # category -> its PER_CATEGORY most popular
    by_brand: Mapping[tuple[str, str], tuple[str, ...]]  # (category, brand) -> PER_BRAND
    weight: Mapping[str, float]  # item -> popularity / its category's top + the floor
    overall: tuple[str, ...]  # the OVERALL most popular items
    _orders: dict[tuple[str, tuple[str, ...], int | None], tuple[str, ...]] = field(
        default_factory=dict, compare=False, repr=False)  # _candidates' lists, as computed

    @classmethod
    def of(cls, items: Sequence[str], neighbours: np.ndarray, scores: np.ndarray,
           info: Mapping[str, ItemInfo]) -> ItemRecommender:
        if neighbours.shape != scores.shape or neighbours.shape[0] != len(items):
            raise ModelVersionError(
                f"{SIMILAR_ARTIFACT}: {len(items)} items but neighbours {neighbours.shape} "
                f"and scores {scores.shape}; retrain the version with `nbo train`")
        groups: dict[str, list[str]] = {}
        brands: dict[tuple[str, str], list[str]] = {}
        for item, about in info.items():
            if about.category is not None:
                groups.setdefault(about.category, []).append(item)
                if about.brand is not None:
                    brands.setdefault((about.category, about.brand), []).append(item)
        weight: dict[str, float] = {}
        for members in groups.values():
            most = max(info[item].popularity for item in members)
            for item in members:
                weight[item] = (info[item].popularity / most if most > 0 else 0.0
                                ) + POPULARITY_FLOOR
        return cls(tuple(items), {item: i for i, item in enumerate(items)},
                   np.asarray(neighbours, dtype=np.int32), np.asarray(scores, dtype=np.float32),
                   dict(info),
                   {c: tuple(_ranked(m, info)[:PER_CATEGORY]) for c, m in sorted(groups.items())},
                   {k: tuple(_ranked(m, info)[:PER_BRAND]) for k, m in sorted(brands.items())},
                   weight, tuple(_ranked(list(info), info)[:OVERALL]))

    @classmethod
    def from_artifacts(cls, artifacts: Mapping[str, bytes]) -> ItemRecommender:
        """From the bytes of ARTIFACTS (as training writes them)."""
        similar = np.load(io.BytesIO(artifacts[SIMILAR_ARTIFACT]), allow_pickle=False)
        table = cast(dict[str, list[object]], orjson.loads(artifacts[TABLE_ARTIFACT]))
        missing = [name for name in TABLE_COLUMNS if name not in table]
        if missing:
            raise ModelVersionError(f"{TABLE_ARTIFACT} lacks {missing}; retrain the version "
                                    "with `nbo train`")
        info = {str(row[0]): ItemInfo(
            None if row[1] is None else str(row[1]), None if row[2] is None else str(row[2]),
            None if row[3] is None else float(cast(float, row[3])),
            None if row[4] is None else int(cast(int, row[4])), float(cast(float, row[5])))
            for row in zip(*(table[name] for name in TABLE_COLUMNS), strict=True)}
        return cls.of([str(item) for item in similar["items"]], similar["neighbours"],
                      similar["scores"], info)

    @classmethod
    def load(cls, model: ModelVersion) -> ItemRecommender:
        return cls.from_artifacts({name: model.artifact(name) for name in ARTIFACTS})

    def similar(self, item_id: str, n: int) -> list[tuple[str, float]]:
        """Up to n items nearest to `item_id`, best first; none for an unknown item."""
        row = self.row.get(item_id)
        if row is None or n <= 0:
            return []
        ids, scores = self.neighbours[row, :n].tolist(), self.scores[row, :n].tolist()
        return [(self.items[j], float(s)) for j, s in zip(ids, scores, strict=True) if j >= 0]

    def _candidates(self, category: str, brands: Sequence[str],
                    band: int | None) -> tuple[str, ...]:
        """The category's candidates, best first: popularity, boosted for a top brand and
        for the user's price band. Only the top brands with items in the category change
        the list, so it is kept per (category, those brands, band): users share them."""
        wanted = tuple(sorted(b for b in set(brands) if (category, b) in self.by_brand))
        key = (category, wanted, band)
        found = self._orders.get(key)
        if found is None:
            if len(self._orders) >= MAX_ORDERS:
                self._orders.clear()
            found = self._orders[key] = self._order(category, wanted, band)
        return found

    def _order(self, category: str, brands: tuple[str, ...], band: int | None) -> tuple[str, ...]:
        candidates = dict.fromkeys(self.popular[category])
        for brand in brands:
            candidates.update(dict.fromkeys(self.by_brand[(category, brand)]))

        def score(item: str) -> float:
            about = self.info[item]
            return (self.weight[item] * (BRAND_BOOST if about.brand in brands else 1.0)
                    * (BAND_BOOST if band is not None and about.band == band else 1.0))

        return tuple(sorted(candidates, key=lambda item: (-score(item), item)))

    def for_user(self, categories: Sequence[str], brands: Sequence[str],
                 price_bands: Mapping[str, str], n: int,
                 exclude: Collection[str] = ()) -> list[str]:
        """Up to n items for a user with these ranked categories and brands (best first) and
        price band per category ("low", "mid" or "high"), not in `exclude`: the categories
        take turns, each a CATEGORY_DECAY share of the one before (6, 3 and 1 of 10 items
        for three), then the most popular items overall fill the list. Unknown categories
        and brands are passed over."""
        queues = [iter(self._candidates(category, brands, BANDS.index(price_bands[category])
                                        if price_bands.get(category) in BANDS else None))
                  for category in dict.fromkeys(categories) if category in self.popular]
        shares = [CATEGORY_DECAY ** rank for rank in range(len(queues))]
        taken = [0] * len(queues)
        live = list(range(len(queues)))
        chosen: dict[str, None] = {}
        skipped = set(exclude)
        while live and len(chosen) < n:
            # the category furthest below its share of the list so far, the better first
            rank = min(live, key=lambda r: ((taken[r] + 1) / shares[r], r))
            item = next((i for i in queues[rank] if i not in chosen and i not in skipped), None)
            if item is None:
                live.remove(rank)
                continue
            chosen[item] = None
            taken[rank] += 1
        for item in self.overall:
            if len(chosen) >= n:
                break
            if item not in chosen and item not in skipped:
                chosen[item] = None
        return list(chosen)
