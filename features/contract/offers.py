"""The offer catalog: a typed model, and reading it from YAML or JSON with located errors."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveInt,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from features.contract.problems import FileCheck, Problem
from features.contract.schema import Channel, Journey, LifecycleStage, OfferKind
from nbo.errors import DataContractError

OFFER_FILE_NAMES = ("offers.yaml", "offers.yml", "offers.json")
NonEmptyStr = Annotated[str, Field(min_length=1)]


class Eligibility(BaseModel):
    """Who may receive an offer; empty lists mean everyone."""

    model_config = ConfigDict(extra="forbid")

    lifecycle_stages: list[LifecycleStage] = Field(default_factory=list)
    segments: list[NonEmptyStr] = Field(default_factory=list)


class Offer(BaseModel):
    """One incentive or content piece the CRM team can send (docs/data.md, "offers")."""

    model_config = ConfigDict(extra="allow")

    offer_id: NonEmptyStr
    kind: OfferKind
    value: NonNegativeFloat = Field(description="face value to the customer, currency units")
    cost: NonNegativeFloat = Field(description="cost to the business per redemption")
    categories: list[NonEmptyStr] = Field(default_factory=list, description="empty: any")
    channels: list[Channel] = Field(default_factory=list, description="empty: any")
    journeys: list[Journey] = Field(default_factory=list, description="empty: any")
    min_order_value: NonNegativeFloat = 0.0
    eligibility: Eligibility = Field(default_factory=Eligibility)
    budget: NonNegativeFloat | None = Field(default=None, description="total cost allowed")
    max_per_user: PositiveInt | None = None
    valid_from: AwareDatetime | None = None
    valid_to: AwareDatetime | None = None

    @model_validator(mode="after")
    def _window_is_ordered(self) -> Offer:
        if self.valid_from and self.valid_to and self.valid_to <= self.valid_from:
            raise ValueError("valid_to must be later than valid_from")
        return self

    def is_valid_at(self, moment: datetime) -> bool:
        starts_ok = self.valid_from is None or self.valid_from <= moment
        return starts_ok and (self.valid_to is None or moment < self.valid_to)


def offers_file(directory: Path) -> Path | None:
    """The data set's offer file, if it has one."""
    found = [directory / name for name in OFFER_FILE_NAMES if (directory / name).is_file()]
    if len(found) > 1:
        names = ", ".join(path.name for path in found)
        raise DataContractError(f"{directory}: the offers are given more than once ({names})")
    return found[0] if found else None


def _document(path: Path, check: FileCheck, limit: int) -> list[Any] | None:
    try:
        text = path.read_text(encoding="utf-8")
        document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError) as error:
        kind = "JSON" if path.suffix == ".json" else "YAML"
        detail = " ".join(str(error).split())
        check.add(Problem(path, f"a readable {kind} document ({detail})"), limit)
        return None
    if isinstance(document, dict) and isinstance(document.get("offers"), list):
        document = document["offers"]
    if not isinstance(document, list):
        check.add(Problem(path, "a list of offers, or a mapping with an 'offers' list"), limit)
        return None
    return document


def read_offers(path: Path, limit: int = 20) -> tuple[list[Offer], FileCheck]:
    """Every valid offer in the file, and a check listing each invalid one's problems."""
    check = FileCheck(path)
    document = _document(path, check, limit)
    if document is None:
        return [], check
    check.rows = len(document)
    offers: list[Offer] = []
    seen: set[str] = set()
    for row, entry in enumerate(document, start=1):
        try:
            offer = Offer.model_validate(entry)
        except ValidationError as error:
            check.invalid_rows += 1
            for detail in error.errors():
                column = ".".join(str(part) for part in detail["loc"]) or None
                value = None if detail["type"] == "missing" else str(detail["input"])
                check.add(Problem(path, _expected(detail), row, column, value), limit)
            continue
        if offer.offer_id in seen:
            check.invalid_rows += 1
            expected = "an offer_id used by no earlier offer"
            check.add(Problem(path, expected, row, "offer_id", offer.offer_id), limit)
            continue
        seen.add(offer.offer_id)
        offers.append(offer)
    return offers, check


def _expected(detail: ErrorDetails) -> str:
    message = str(detail["msg"])
    if detail["type"] == "missing":
        return "a value (the field is required)"
    return message[0].lower() + message[1:] if message else "a valid value"
