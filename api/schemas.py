"""Request and response bodies of the HTTP API (the decision's own fields: decisions/outcome.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from features.contract.schema import Channel, Journey

USER_ID_MAX = 128
UserId = Annotated[str, Field(min_length=1, max_length=USER_ID_MAX)]
JsonValue = str | int | float | bool | None


class DecisionOptions(BaseModel):
    """What the caller can say about the moment of a decision."""

    model_config = ConfigDict(extra="forbid")

    journey: Journey | None = Field(default=None, description="the journey asking")
    channels: list[Channel] | None = Field(
        default=None, description="channels allowed for this decision (default: all); "
        "repeat the parameter or separate with commas")
    campaign_id: str | None = Field(default=None, min_length=1, max_length=128)
    n_offers: int = Field(default=3, ge=0, le=50)
    n_categories: int = Field(default=5, ge=0, le=50)
    n_items: int = Field(default=5, ge=0, le=50, description="recommended items to return")
    explain: bool = Field(default=False, description="add the reasons to the answer")

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
    user_ids: list[UserId] = Field(min_length=1, description="at most NBO_MAX_BATCH_USERS")


class EventsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[dict[str, JsonValue]] = Field(
        min_length=1, description="events as in the data contract (docs/data.md); at most "
        "NBO_MAX_EVENTS_PER_REQUEST")


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

    decision_id: str = Field(min_length=1, max_length=64)
    type: Literal["impression", "open", "click", "conversion", "redemption"]
    offer_id: str | None = Field(default=None, min_length=1, max_length=128)
    ts: datetime | None = Field(default=None, description="when it happened (default: now)")
    value: float | None = Field(default=None, ge=0, description="order value, if any")


class FeedbackResponse(BaseModel):
    accepted: bool
    decision_id: str
    user_id: str
