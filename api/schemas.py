"""Request and response bodies of the HTTP API (the decision's own fields: decisions/outcome.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, Self

from fastapi import Path
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from starlette.convertors import PathConvertor, register_url_convertor

from decisions.outcome import Decision
from features.contract.schema import (
    COUNTRY_PATTERN,
    ID_MAX_CHARS,
    PRICE_MAX,
    Channel,
    Journey,
    clean_text,
    is_clean_text,
)

FUTURE_SLACK = timedelta(minutes=10)
"""How far ahead of this server's clock an event's or a feedback's time may be (a sender's
clock may run a little fast); later ones are refused."""
Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                     max_length=ID_MAX_CHARS), AfterValidator(clean_text)]
"""A user, campaign or offer id, as the events contract takes them."""
IdPath = Annotated[Id, Path()]
"""A user or item id in a route's path, taken as `Id` is; routes write it `{user_id:id}`."""


class IdConvertor(PathConvertor):
    """`{name:id}` in a route's path: any characters, a `/` (as Starlette's `path`) or a line
    feed included. The `path` convertor's `.*` stops at a line feed: an id holding one
    matched no route (a 404, before even the key was checked) instead of being read as
    `IdPath` reads any id (trimmed, then refused for a control character in it)."""

    regex = "(?s:.*)"


register_url_convertor("id", IdConvertor())


def valid_user_id(user_id: str) -> bool:
    """Whether `IdPath` takes `user_id` as it is (one with blanks around is trimmed by the
    route)."""
    return (1 <= len(user_id) <= ID_MAX_CHARS and user_id == user_id.strip()
            and is_clean_text(user_id))


class DecisionOptions(BaseModel):
    """What the caller can say about the moment of a decision."""

    model_config = ConfigDict(extra="forbid")

    journey: Journey | None = Field(default=None, description="the journey asking")
    channels: list[Channel] | None = Field(
        default=None, min_length=1, description="channels allowed for this decision "
        "(default: all); repeat the parameter or separate with commas")
    campaign_id: Id | None = None
    n_offers: int = Field(default=3, ge=0, le=50)
    n_categories: int = Field(default=5, ge=0, le=50)
    n_items: int = Field(default=5, ge=0, le=50, description="recommended items to return")
    explain: bool = Field(default=False, description="add the reasons to the answer")
    country: str | None = Field(
        default=None, pattern=COUNTRY_PATTERN, description="the user's country (ISO 3166-1 "
        "alpha-2, e.g. FR) where nbo knows none, as for a visitor never seen: a user with no "
        "history of their own is answered from their country's prior, and offers for "
        "`country:XX` apply")

    @field_validator("channels", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, list):
            return [part.strip() for item in value for part in str(item).split(",")
                    if part.strip()]
        return value


class BlockOptions(DecisionOptions):
    format: Literal["html", "json"] = Field(default="html", description="html or json")


class BatchDecisionRequest(DecisionOptions):
    user_ids: list[Id] = Field(min_length=1, description="at most NBO_MAX_BATCH_USERS")


class EventsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # any JSON per item, not validated here (pydantic's JsonValue refuses a whole request
    # for one item nested too deep): the contract's check (features/contract/records.py)
    # rejects a bad item on its own, so the good ones next to it are still applied
    events: list[Any] = Field(
        min_length=1, description="events as in the data contract (docs/data.md), each an "
        "object; at most NBO_MAX_EVENTS_PER_REQUEST")


class EventOutcome(BaseModel):
    index: int
    status: Literal["applied", "duplicate", "rejected"]
    problems: list[str] = Field(default_factory=list)


class EventsResponse(BaseModel):
    applied: int
    duplicates: int
    rejected: int
    results: list[EventOutcome]


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision_id: Annotated[str, Field(min_length=1, max_length=64), AfterValidator(clean_text)]
    type: Literal["impression", "open", "click", "conversion", "redemption"]
    offer_id: Id | None = None
    ts: datetime | None = Field(default=None, description="when it happened, with its "
                                "time-zone offset (default: now)")
    value: float | None = Field(default=None, ge=0, le=PRICE_MAX, allow_inf_nan=False,
                                strict=True, description="order value, if any")

    @field_validator("ts")
    @classmethod
    def _has_offset(cls, ts: datetime | None) -> datetime | None:
        """A time without an offset names no moment (docs/data.md's rule for timestamps)."""
        if ts is not None and ts.utcoffset() is None:
            raise PydanticCustomError(
                "timezone_aware", "a time with its time-zone offset, such as "
                "2026-01-05T10:00:00+01:00 or 2026-01-05T09:00:00Z: add the offset")
        if ts is not None and ts > datetime.now(UTC) + FUTURE_SLACK:
            raise PydanticCustomError(
                "time_in_future", "a time no later than now (give or take a few minutes): "
                "feedback cannot come from the future")
        return ts

    @model_validator(mode="after")
    def _redemption_names_its_offer(self) -> Self:
        """A redemption spends its offer's budget, so it must say which offer it was."""
        if self.type == "redemption" and self.offer_id is None:
            error = PydanticCustomError(
                "missing_offer", "a redemption must name the offer redeemed (its budget pays "
                "for it): add offer_id, one of the offers the decision made")
            raise ValidationError.from_exception_data(
                type(self).__name__, [{"type": error, "loc": ("offer_id",), "input": None}])
        return self


class FeedbackResponse(BaseModel):
    accepted: bool
    decision_id: str
    user_id: str
    duplicate: bool = Field(description="this decision's feedback of this type (and offer) "
                            "was reported before: nothing was recorded or counted again")


# -- errors, as the OpenAPI document describes them (api/errors.py writes them) ------------


class Decisions(BaseModel):
    """The answer of a batch: each user's decision, in the order asked."""

    decisions: list[Decision]


class Readiness(BaseModel):
    """/readyz: ready, or each problem (a 503)."""

    ready: bool
    problems: list[str]


class Problem(BaseModel):
    """One problem of an invalid request."""

    location: str = Field(description="where: `query.n_offers`, `body.events.3.ts`, ...")
    message: str = Field(description="what is wrong and what is expected")
    got: Any = Field(default=None, description="what was sent there, shortened")


class ErrorBody(BaseModel):
    """The body of every error."""

    model_config = ConfigDict(extra="allow")  # a few errors add a field (the events stored)

    error: str = Field(description="its code: invalid_request, unauthorized, not_found, ...")
    detail: str = Field(description="what went wrong, and what to send instead")
    problems: list[Problem] | None = Field(
        default=None, description="an invalid request's problems, each on its own")


_ERRORS = {
    400: "a body that cannot be read as JSON (not UTF-8, nested too deeply)",
    401: "no API key, or one nbo does not know",
    403: "a key without the role this endpoint needs",
    404: "no such decision, offer or item",
    409: "a model version that cannot serve this: none promoted, one that will not load, "
         "one without an item model",
    413: "a body larger than NBO_MAX_REQUEST_BYTES, or a batch beyond its limit",
    422: "an invalid request: `detail` says what to fix, `problems` lists each problem",
    503: "Redis is unreachable, or the worker has too many requests in flight: retry after "
         "the Retry-After header's seconds",
}


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}}


_ERROR_HEADERS = {
    401: {"WWW-Authenticate": _header('`Bearer realm="nbo"`: send a key as X-API-Key or '
                                      "Authorization: Bearer")},
    503: {"Retry-After": _header("seconds to wait before retrying")},
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI responses of these error statuses (FastAPI's `responses=`)."""
    return {status: {"model": ErrorBody, "description": _ERRORS[status],
                     **({"headers": _ERROR_HEADERS[status]} if status in _ERROR_HEADERS else {})}
            for status in statuses}


_VALIDATORS = {
    "ETag": _header("the content's tag (a decision's only with a campaign_id): send it back "
                    "as If-None-Match to get a 304 while it holds"),
    "Cache-Control": _header("`private, max-age=` the seconds the campaign's answer is "
                             "remembered for; `no-store` without a campaign_id"),
}


def cached_responses(content: dict[str, Any], description: str) -> dict[int | str, Any]:
    """The OpenAPI responses of a route answering with cache validators (ETag,
    Cache-Control) and a 304 to a current If-None-Match: `content` its 200's."""
    return {200: {**content, "description": description, "headers": _VALIDATORS},
            304: {"description": "the If-None-Match tag is the content's: no body",
                  "headers": _VALIDATORS}}


V1_ERRORS = error_responses(401, 403, 413, 422, 503)
"""The errors every /v1 endpoint may answer."""
