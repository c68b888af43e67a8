"""The knobs a CRM team turns (holdouts, exploration, caps, channel costs), built from the
settings once per process."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from decisions.contact_policy import ContactPolicy
from decisions.exploration import Exploration
from decisions.holdout import Holdout
from nbo.settings import Settings


@dataclass(frozen=True)
class Policy:
    holdout: Holdout
    exploration: Exploration
    contacts: ContactPolicy  # its weekly cap is the served model's, set per decision
    channel_costs: Mapping[str, float]
    open_value: float  # what an opened message is worth, in currency units
    order_margin: float  # the share of an order's value the business keeps
    default_order_value: float  # for users with no purchase yet
    given_ttl_s: int  # how long a user's per-offer counts (max_per_user) are kept
    decision_log_max: int
    decision_ttl_s: int  # how long a decision can be joined with feedback

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            holdout=Holdout(settings.holdout_salt, settings.holdout_share,
                            dict(settings.holdout_journey_shares)),
            exploration=Exploration(settings.exploration, settings.exploration_epsilon,
                                    settings.exploration_top_k),
            contacts=ContactPolicy(dict(settings.contact_caps), settings.quiet_hours),
            channel_costs=dict(settings.channel_costs),
            open_value=settings.open_value,
            order_margin=settings.order_margin,
            default_order_value=settings.default_order_value,
            given_ttl_s=int(settings.offer_memory_days * 86_400),
            decision_log_max=settings.decision_log_max,
            decision_ttl_s=int(settings.offer_memory_days * 86_400),
        )
