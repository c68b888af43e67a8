"""What is stored once per published version: vocabularies, anchor, buckets, layout."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from features.price_bands import PriceBands


@dataclass(frozen=True)
class VersionMeta:
    version: str
    anchor: datetime  # the batch's cut-off, the decayed counts' anchor
    buckets: int  # users are spread over this many profile hashes
    users: int
    layout: list[Any]  # the packed record's numpy dtype description: names, types, order
    categories: tuple[str, ...] = ()  # id i + 1 in a packed record is categories[i]
    brands: tuple[str, ...] = ()
    timezones: tuple[str, ...] = ()
    bands: PriceBands = field(default_factory=lambda: PriceBands({}))
    cycles: dict[str, float] = field(default_factory=dict)  # category -> days
    engagement: dict[str, dict[str, float]] = field(default_factory=dict)  # population rates
    published: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_json(self) -> bytes:
        return orjson.dumps({
            **{name: getattr(self, name) for name in self.__dataclass_fields__},
            "anchor": self.anchor.isoformat(), "published": self.published.isoformat(),
            "bands": {c: list(b) for c, b in self.bands.bounds.items()},
        })

    @classmethod
    def from_json(cls, raw: bytes | str) -> VersionMeta:
        data = orjson.loads(raw)
        return cls(
            **{**data, "anchor": datetime.fromisoformat(data["anchor"]),
               "published": datetime.fromisoformat(data["published"]),
               "categories": tuple(data["categories"]), "brands": tuple(data["brands"]),
               "timezones": tuple(data["timezones"]),
               "bands": PriceBands({c: (b[0], b[1]) for c, b in data["bands"].items()})})
