"""A registered model version, loaded for serving: everything a decision scores with.

Loading verifies the version's checksums and builds every scorer before anything is
swapped in, so a version that fails to load never replaces the one being served.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from models.brands import BrandRanker
from models.categories import CategoryRanker
from models.category_timing import ARTIFACT as CATEGORY_TIMING
from models.category_timing import CategoryTiming
from models.channels import ChannelModel
from models.items import ARTIFACTS as ITEM_ARTIFACTS
from models.items import ItemRecommender
from models.offer_response import OfferResponseScorer
from models.registry import ModelVersion
from models.send_time import SendTimeModel


@dataclass(frozen=True)
class ServingModels:
    version: str
    send_time: SendTimeModel
    channels: ChannelModel
    weekly_cap: int | None  # learned from how engagement falls with contact pressure
    offer_response: OfferResponseScorer | None  # None when trained without offers
    categories: CategoryRanker | None  # None for versions trained before it was served
    brands: BrandRanker
    items: ItemRecommender | None = None  # None for versions trained before it was served
    category_timing: CategoryTiming | None = None  # likewise

    @classmethod
    def load(cls, model: ModelVersion, compiled: Path | None = None) -> ServingModels:
        """From a verified registry version (ModelRegistry.get); tree models compiled into
        the cache directory `compiled` when given, else run as ONNX (tree_scoring.py)."""
        has_offers = (model.path / "offer_response.onnx").is_file()
        volume = json.loads(model.artifact("contact_volume.json"))
        return cls(
            version=model.version,
            send_time=SendTimeModel.from_json(model.artifact("send_time.json")),
            channels=ChannelModel.from_json(model.artifact("channel.json")),
            weekly_cap=None if volume.get("weekly_cap") is None else int(volume["weekly_cap"]),
            offer_response=OfferResponseScorer.load(model, compiled) if has_offers else None,
            categories=(CategoryRanker.load(model, compiled)
                        if (model.path / "category_popularity.json").is_file() else None),
            brands=BrandRanker.load(model, compiled),
            items=(ItemRecommender.load(model)
                   if all((model.path / name).is_file() for name in ITEM_ARTIFACTS) else None),
            category_timing=(CategoryTiming.from_json(model.artifact(CATEGORY_TIMING))
                             if (model.path / CATEGORY_TIMING).is_file() else None),
        )
