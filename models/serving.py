"""A registered model version, loaded for serving: everything a decision scores with.

Loading verifies the version's checksums and builds every scorer before anything is
swapped in, so a version that fails to load never replaces the one being served.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from models.brands import BrandRanker
from models.categories import CategoryRanker
from models.channels import ChannelModel
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

    @classmethod
    def load(cls, model: ModelVersion) -> ServingModels:
        """From a verified registry version (ModelRegistry.get)."""
        has_offers = (model.path / "offer_response.onnx").is_file()
        volume = json.loads(model.artifact("contact_volume.json"))
        return cls(
            version=model.version,
            send_time=SendTimeModel.from_json(model.artifact("send_time.json")),
            channels=ChannelModel.from_json(model.artifact("channel.json")),
            weekly_cap=int(volume["weekly_cap"]) if "weekly_cap" in volume else None,
            offer_response=(OfferResponseScorer(model.artifact("offer_response.onnx"))
                            if has_offers else None),
            categories=(CategoryRanker.load(model)
                        if (model.path / "category_popularity.json").is_file() else None),
            brands=BrandRanker.load(model),
        )
