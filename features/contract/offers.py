"""The offer catalog: a typed model, and reading it from YAML or JSON with located errors.

`Offer` is an offer as the catalog holds it; `OfferInput`, what a person writes (PUT
/v1/offers, offers files), is checked harder: an unknown field or a segment the engine
cannot match is a mistake to report, never a rule to drop silently.
"""

from __future__ import annotations

import difflib
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Self, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PositiveInt,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from features.contract.problems import FileCheck, Problem, validation_message
from features.contract.schema import (
    COUNTRY_PATTERN,
    ID_MAX_CHARS,
    NAME_MAX_CHARS,
    PRICE_MAX,
    Channel,
    Journey,
    LifecycleStage,
    OfferKind,
    clean_text,
)
from nbo.errors import DataContractError

OFFER_FILE_NAMES = ("offers.yaml", "offers.yml", "offers.json")
NonEmptyStr = Annotated[str, Field(min_length=1)]
# text as written is trimmed (docs/data.md), as events' text is: a category " tea" would
# name no category any user has
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                        max_length=NAME_MAX_CHARS), AfterValidator(clean_text)]
OfferId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                           max_length=ID_MAX_CHARS, pattern="^[^/]*$"),
                    AfterValidator(clean_text)]
"""An offer id as written: it is a path segment of /v1/offers/{offer_id}, so no slash."""
MAX_PER_USER = 1_000_000
"""The largest `max_per_user`: no user is shown an offer more often."""
# NaN and infinity are no amounts (and JSON would store them as null, losing the offer);
# nor are true, false or "5" (strict: `budget: no` must not read as a budget of 0)
Amount = Annotated[float, Field(ge=0, allow_inf_nan=False, strict=True)]
AmountInput = Annotated[float, Field(ge=0, le=PRICE_MAX, allow_inf_nan=False, strict=True)]
"""An amount as written: no larger than an event's price may be (offers stored before
writes capped them are still read)."""

# The segments decisions/engine.py (`_segments`) gives users, which offers may target.
SEGMENTS = ("buyer", "prospect", "app")
SEGMENT_FORMS = ("buyer, prospect, app or country:XX (XX: a country as the users table gives "
                 "it, two upper-case letters, e.g. country:FR)")
UNKNOWN_FIELD = "unknown_field"


class _NumbersLoader(yaml.SafeLoader):
    """YAML's safe loader, reading plain numbers as YAML 1.2's core schema (and JSON) does:
    `1e4` is a number (YAML 1.1 wants a dot in it), `010` is ten (not octal eight), `0o10`
    eight and `0x10` sixteen, and `1:30` (base 60 in YAML 1.1) or `1_000` are text, which
    the strict amounts refuse."""


_INT_TAG, _FLOAT_TAG = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_DECIMAL = re.compile(r"^[-+]?[0-9]+$")
_OCTAL_OR_HEX = re.compile(r"^0o[0-7]+$|^0x[0-9a-fA-F]+$")
_NumbersLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag not in (_INT_TAG, _FLOAT_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_NumbersLoader.add_implicit_resolver(_INT_TAG, _DECIMAL, list("-+0123456789"))
_NumbersLoader.add_implicit_resolver(_INT_TAG, _OCTAL_OR_HEX, ["0"])
_NumbersLoader.add_implicit_resolver(_FLOAT_TAG, re.compile(
    r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$|^[-+]?\.(inf|Inf|INF)$"
    r"|^\.(nan|NaN|NAN)$"), list("-+0123456789."))


def _integer(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    """A decimal integer in base 10 whatever its leading zeros, `0o` octal, `0x` hex (one
    tagged `!!int` in another form, as YAML 1.1 reads it)."""
    text = str(loader.construct_scalar(node))
    if _DECIMAL.match(text):
        return int(text, 10)
    return int(text, 0) if _OCTAL_OR_HEX.match(text) else loader.construct_yaml_int(node)


_NumbersLoader.add_constructor(_INT_TAG, _integer)
M = TypeVar("M", bound=BaseModel)


_COUNTRY = re.compile(COUNTRY_PATTERN)  # `country:XX` matches users whose country is XX


def _known_segment(segment: str) -> str:
    country = segment.removeprefix("country:")
    if segment in SEGMENTS or (country != segment and _COUNTRY.fullmatch(country)):
        return segment
    raise PydanticCustomError("unknown_segment", "a segment nbo gives users: {forms}; no user "
                              "is ever in another, so the offer could never be chosen",
                              {"forms": SEGMENT_FORMS})


Segment = Annotated[str, AfterValidator(_known_segment)]


def _known_fields(model: type[M], data: object, handler: ModelWrapValidatorHandler[M]) -> M:
    """`handler(data)`, with each key of `data` that `model` lacks reported by name (and the
    fields accepted), first, then whatever else is wrong."""
    accepted = list(model.model_fields)
    unknown = (sorted(set(data) - set(accepted), key=str)  # YAML keys may be any scalar
               if isinstance(data, dict) else [])
    if not isinstance(data, dict) or not unknown:
        return handler(data)
    found: list[InitErrorDetails] = []
    for name in unknown:
        close = difflib.get_close_matches(str(name), accepted, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        error = PydanticCustomError(UNKNOWN_FIELD, "unknown field{hint}; the fields accepted "
                                    "here are {accepted}",
                                    {"hint": hint, "accepted": ", ".join(accepted)})
        found.append({"type": error, "loc": (str(name),), "input": data[name]})
    try:
        handler({key: value for key, value in data.items() if key not in unknown})
    except ValidationError as error:
        found += [{"type": PydanticCustomError(detail["type"], detail["msg"]),
                   "loc": detail["loc"], "input": detail["input"]} for detail in error.errors()]
    raise ValidationError.from_exception_data(model.__name__, found)


class Eligibility(BaseModel):
    """Who may receive an offer; empty lists mean everyone."""

    model_config = ConfigDict(extra="forbid")

    lifecycle_stages: list[LifecycleStage] = Field(default_factory=list)
    segments: list[NonEmptyStr] = Field(default_factory=list)


class EligibilityInput(Eligibility):
    """Eligibility as written: segments of the forms the engine gives users."""

    segments: list[Segment] = Field(default_factory=list)

    @model_validator(mode="wrap")
    @classmethod
    def _no_unknown_fields(cls, data: object, handler: ModelWrapValidatorHandler[Self]) -> Self:
        return _known_fields(cls, data, handler)


class Offer(BaseModel):
    """One incentive or content piece the CRM team can send (docs/data.md, "offers")."""

    # other fields are kept: offers stored before writes refused them must still be read
    model_config = ConfigDict(extra="allow")

    offer_id: NonEmptyStr
    kind: OfferKind
    value: Amount = Field(description="face value to the customer, currency units")
    cost: Amount = Field(description="cost to the business per redemption")
    categories: list[NonEmptyStr] = Field(default_factory=list, description="empty: any")
    channels: list[Channel] = Field(default_factory=list, description="empty: any")
    journeys: list[Journey] = Field(default_factory=list, description="empty: any")
    min_order_value: Amount = 0.0
    eligibility: Eligibility = Field(default_factory=Eligibility)
    budget: Amount | None = Field(default=None, description="total cost allowed")
    max_per_user: PositiveInt | None = None
    valid_from: AwareDatetime | None = None
    valid_to: AwareDatetime | None = None

    @field_validator("valid_to")
    @classmethod
    def _after_valid_from(cls, valid_to: datetime | None,
                          info: ValidationInfo) -> datetime | None:
        """Checked on the field (valid_from is read before it), so a problem names it."""
        valid_from = info.data.get("valid_from")
        if valid_from and valid_to and valid_to <= valid_from:
            raise ValueError(f"a time later than valid_from ({valid_from.isoformat()})")
        return valid_to

    def is_valid_at(self, moment: datetime) -> bool:
        starts_ok = self.valid_from is None or self.valid_from <= moment
        return starts_ok and (self.valid_to is None or moment < self.valid_to)


class OfferInput(Offer):
    """An offer as a person writes it: unknown fields and segments refused, ids no longer
    than the API's paths take."""

    # (the wrap validator below refuses other fields, which the schema cannot see)
    model_config = ConfigDict(extra="allow", json_schema_extra={"additionalProperties": False})

    offer_id: OfferId
    value: AmountInput = Field(description="face value to the customer, currency units")
    cost: AmountInput = Field(description="cost to the business per redemption")
    categories: list[Name] = Field(default_factory=list, description="empty: any")
    min_order_value: AmountInput = 0.0
    budget: AmountInput | None = Field(default=None, description="total cost allowed")
    max_per_user: Annotated[int, Field(gt=0, le=MAX_PER_USER, strict=True)] | None = None
    eligibility: EligibilityInput = Field(default_factory=EligibilityInput)

    @model_validator(mode="wrap")
    @classmethod
    def _no_unknown_fields(cls, data: object, handler: ModelWrapValidatorHandler[Self]) -> Self:
        return _known_fields(cls, data, handler)

    def as_offer(self) -> Offer:
        """The same offer as the catalog holds it (models of different classes never compare
        equal)."""
        return Offer.model_validate(self.model_dump())


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
        document = (json.loads(text) if path.suffix == ".json"
                    else yaml.load(text, Loader=_NumbersLoader))  # a SafeLoader
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
            offer = OfferInput.model_validate(entry).as_offer()
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
    message = validation_message(detail["msg"])
    if detail["type"] == "missing":
        return "a value (the field is required)"
    if detail["type"] == UNKNOWN_FIELD:
        return "a known field" + message.removeprefix("unknown field")
    return message[0].lower() + message[1:] if message else "a valid value"
