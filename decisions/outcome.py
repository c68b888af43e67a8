"""What a decision answers (docs/api.md): plain dataclasses that orjson serializes as is."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

# model: the user's own history; country: a user with none, answered from the prior of
# their country; global: from the prior over all users; degraded: Redis was unreachable,
# answered from in-process defaults
Source = Literal["model", "country", "global", "degraded"]


@dataclass(frozen=True)
class DecisionRequest:
    user_id: str
    journey: str | None = None
    channels: tuple[str, ...] | None = None  # the channels the caller allows; None: any
    campaign_id: str | None = None
    n_offers: int = 3
    n_categories: int = 5
    n_items: int = 5
    explain: bool = False
    country: str | None = None  # where the user's profile has none


@dataclass(frozen=True)
class ChosenOffer:
    offer_id: str
    kind: str
    value: float
    p_convert: float  # with the offer
    uplift: float  # P(convert | offer) - P(convert | no offer)
    expected_value: float  # uplift x order margin - P(convert | offer) x cost
    propensity: float  # the probability the policy picked it at its rank


@dataclass(frozen=True)
class ChannelScore:
    channel: str
    open_rate: float
    cost: float
    score: float  # open rate x value of an open - cost of the message
    allowed: bool  # reachable, allowed by the caller, and with room under the caps
    send_hour_local: int  # learned, moved out of the quiet hours on channels that interrupt
    send_at: datetime | None  # the next UTC instant at that local hour the caps allow;
    # None on a channel the user cannot be reached on (no consent, the app uninstalled)


@dataclass(frozen=True)
class ContactBudgetView:
    window_days: int
    sent: int
    cap: int | None
    remaining: int | None
    next_allowed_at: datetime | None


@dataclass(frozen=True)
class Decision:
    decision_id: str
    user_id: str
    source: Source
    degraded: bool
    offers: list[ChosenOffer]
    categories: list[str]
    category_hours: dict[str, int]  # category -> local hour the user most likely shops it
    category_price_bands: dict[str, str]  # category -> the band the user buys in there
    brands: list[str]
    items: list[str]  # recommended items: popular in the user's categories, brands and band
    price_band: str | None
    channel: str | None  # the best allowed channel; None when none is reachable
    channels: list[ChannelScore]
    lifecycle_stage: str
    contact_budget: ContactBudgetView | None  # None when degraded (the counts are in Redis)
    holdout: bool
    holdout_group: str | None
    journey: str | None
    campaign_id: str | None
    model_version: str | None
    features_version: str | None
    catalog_version: int | None
    explanation: dict[str, object] | None = field(default=None)
