"""The synthetic shop's catalog: categories with repeat cycles, brands in price tiers, items."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

# name, repeat cycle in days (0: a durable, rarely bought again), median price, popularity
CATEGORY_TABLE: tuple[tuple[str, int, float, float], ...] = (
    ("coffee", 14, 9.0, 1.0),
    ("pet_food", 21, 28.0, 0.8),
    ("baby_care", 10, 22.0, 0.5),
    ("skincare", 35, 19.0, 0.9),
    ("haircare", 30, 11.0, 0.7),
    ("oral_care", 40, 6.0, 0.6),
    ("vitamins", 30, 17.0, 0.5),
    ("snacks", 7, 5.0, 1.0),
    ("beverages", 9, 7.0, 0.9),
    ("cleaning", 28, 8.0, 0.7),
    ("fragrance", 90, 55.0, 0.35),
    ("fashion_women", 0, 45.0, 0.8),
    ("fashion_men", 0, 40.0, 0.6),
    ("shoes", 0, 70.0, 0.5),
    ("electronics", 0, 180.0, 0.45),
    ("phones", 0, 420.0, 0.25),
    ("kitchen_appliances", 0, 95.0, 0.3),
    ("home_decor", 0, 35.0, 0.4),
    ("furniture", 0, 260.0, 0.2),
    ("toys", 0, 30.0, 0.4),
    ("books", 0, 16.0, 0.45),
    ("sports", 0, 50.0, 0.4),
    ("garden", 0, 38.0, 0.25),
    ("jewelry", 0, 120.0, 0.15),
)
# Categories with hours of their own: (local hour, share of their visits drawn around it
# rather than around the shopper's own busiest hour). The rest follow the shopper. None of
# the most bought categories is among them: their visits make up most of a user's
# shopping hours, which the send-time model reads as the user's own (a world where coffee
# is bought at 7 for everyone lowered both the send-time hit rate and the offer value).
CATEGORY_HOURS: dict[str, tuple[int, float]] = {
    "baby_care": (5, 0.6),
    "pet_food": (6, 0.5),
    "garden": (9, 0.6),
    "toys": (17, 0.6),
    "books": (21, 0.6),
    "electronics": (22, 0.6),
}
DURABLE_CYCLE_DAYS = 540.0  # a durable's "cycle": a second purchase is possible but rare
BRAND_SYLLABLES = ("ka", "lo", "mi", "ra", "ve", "zu", "no", "ti", "sa", "be", "do", "fi")
TIERS = ("budget", "mid", "premium")
TIER_PRICE = np.array([0.6, 1.0, 1.8])


@dataclass(frozen=True)
class Catalog:
    """Category, brand and item tables as arrays; indices are shared by the whole world."""

    category_names: np.ndarray  # (C,) str
    cycle_days: np.ndarray  # (C,) float, the category's typical inter-purchase interval
    consumable: np.ndarray  # (C,) bool
    category_popularity: np.ndarray  # (C,) float, sums to 1
    shopping_hour: np.ndarray  # (C,) float local hour of the category's own visits, NaN none
    shopping_hour_share: np.ndarray  # (C,) float share of its visits around that hour
    brand_names: np.ndarray  # (B,) str
    brand_category: np.ndarray  # (B,) int
    brand_tier: np.ndarray  # (B,) int into TIERS
    brand_slots: np.ndarray  # (C, S) brand indices per category, -1 padded
    item_ids: np.ndarray  # (I,) str
    item_brand: np.ndarray  # (I,) int
    item_price: np.ndarray  # (I,) float
    item_margin: np.ndarray  # (I,) float, share of price
    brand_items: np.ndarray  # (B, 2) first item index and item count per brand

    @property
    def n_categories(self) -> int:
        return len(self.category_names)

    @property
    def item_category(self) -> np.ndarray:
        return np.asarray(self.brand_category[self.item_brand])

    def items_frame(self) -> pl.DataFrame:
        """The `items` table of the data contract."""
        return pl.DataFrame({
            "item_id": self.item_ids,
            "category": self.category_names[self.item_category],
            "brand": self.brand_names[self.item_brand],
            "price": np.round(self.item_price, 2),
            "margin": np.round(self.item_margin, 3),
        })

    def categories_frame(self) -> pl.DataFrame:
        """Ground truth about categories: cycles, popularity and their own hours."""
        return pl.DataFrame({
            "category": self.category_names,
            "consumable": self.consumable,
            "cycle_days": self.cycle_days,
            "popularity": self.category_popularity,
            "shopping_hour": pl.Series(self.shopping_hour, nan_to_null=True),
            "shopping_hour_share": self.shopping_hour_share,
        })


def build_catalog(rng: np.random.Generator) -> Catalog:
    names = np.array([row[0] for row in CATEGORY_TABLE])
    cycles = np.array([float(row[1]) for row in CATEGORY_TABLE])
    consumable = cycles > 0
    cycles = np.where(consumable, cycles, DURABLE_CYCLE_DAYS)
    medians = np.array([row[2] for row in CATEGORY_TABLE])
    popularity = np.array([row[3] for row in CATEGORY_TABLE])
    popularity = popularity / popularity.sum()
    timed = [CATEGORY_HOURS.get(str(name)) for name in names]

    brand_names: list[str] = []
    brand_category: list[int] = []
    brand_tier: list[int] = []
    for category in range(len(names)):
        for _ in range(int(rng.integers(4, 9))):
            syllables = rng.choice(BRAND_SYLLABLES, size=int(rng.integers(2, 4)))
            brand_names.append(f"{''.join(syllables)}-{len(brand_names)}")
            brand_category.append(category)
            brand_tier.append(int(rng.choice(3, p=[0.35, 0.45, 0.2])))
    categories = np.array(brand_category)
    width = int(np.bincount(categories).max())
    slots = np.full((len(names), width), -1, dtype=np.int64)
    for category in range(len(names)):
        members = np.flatnonzero(categories == category)
        slots[category, : len(members)] = members

    items_per_brand = rng.integers(4, 16, size=len(brand_names))
    starts = np.concatenate([[0], np.cumsum(items_per_brand)[:-1]])
    item_brand = np.repeat(np.arange(len(brand_names)), items_per_brand)
    tiers = np.array(brand_tier)
    noise = rng.lognormal(0.0, 0.25, size=len(item_brand))
    item_price = medians[categories[item_brand]] * TIER_PRICE[tiers[item_brand]] * noise
    base_margin = np.where(consumable[categories[item_brand]], 0.28, 0.22)
    item_margin = np.clip(base_margin + 0.06 * tiers[item_brand] + rng.normal(0, 0.05,
                          size=len(item_brand)), 0.03, 0.7)
    return Catalog(
        category_names=names,
        cycle_days=cycles,
        consumable=consumable,
        category_popularity=popularity,
        shopping_hour=np.array([np.nan if t is None else float(t[0]) for t in timed]),
        shopping_hour_share=np.array([0.0 if t is None else t[1] for t in timed]),
        brand_names=np.array(brand_names),
        brand_category=categories,
        brand_tier=tiers,
        brand_slots=slots,
        item_ids=np.array([f"i{index:05d}" for index in range(len(item_brand))]),
        item_brand=item_brand,
        item_price=item_price,
        item_margin=item_margin,
        brand_items=np.stack([starts, items_per_brand], axis=1),
    )
