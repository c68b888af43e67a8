"""A day of CRM messages from a logged randomized policy, and how users respond to them.

The policy picks who gets a message (journey triggers, then broadcasts), the channel
(uniform over reachable ones), the local hour (uniform) and the offer (none with
P_NO_OFFER, else uniform over eligible offers), and logs the propensity of each choice.
"""

from __future__ import annotations

import numpy as np

from features.contract.schema import Channel, EventType, Journey
from training.synthetic.browsing import record_purchases
from training.synthetic.clock import DAY
from training.synthetic.events import CHANNELS, JOURNEYS
from training.synthetic.population import MESSAGE_CHANNELS, hour_multiplier
from training.synthetic.state import ChunkState, pick_items, sample_rows

P_NO_OFFER = 0.4
P_BROADCAST = 0.15
P_WELCOME = 0.9
P_ABANDONED = 0.7
P_WIN_BACK = 0.04
WIN_BACK_AFTER_DAYS = 30
DORMANT_OPEN_DAMPING = (1.0, 0.35, 0.08)  # active, dormant, churned
UNINSTALL_PER_PUSH = 0.003  # times (1 + messages in the last 7 days)
NO_JOURNEY = len(JOURNEYS)
_APP_CHANNELS = [MESSAGE_CHANNELS.index("push"), MESSAGE_CHANNELS.index("in_app")]


def _journeys(state: ChunkState, day: int) -> np.ndarray:
    """The journey of today's message per user; -1 for no message."""
    users, rng = state.users, state.rng
    n = len(users)
    draw = rng.random(n)
    signed_up = users.signup_day < day
    rules = [
        (users.signup_day == day - 1, P_WELCOME, JOURNEYS.index(Journey.WELCOME)),
        (state.abandoned_day == day - 1, P_ABANDONED, -2),
        (signed_up & (day - state.last_active >= WIN_BACK_AFTER_DAYS), P_WIN_BACK,
         JOURNEYS.index(Journey.WIN_BACK)),
        (signed_up, P_BROADCAST, NO_JOURNEY),
    ]
    journey = np.full(n, -1)
    for applies, probability, code in rules:
        chosen = (journey == -1) & applies & (draw < probability)
        journey[chosen] = code
    checkout = JOURNEYS.index(Journey.CHECKOUT_ABANDONED)
    cart = JOURNEYS.index(Journey.CART_ABANDONED)
    journey[journey == -2] = np.where(state.abandoned_checkout[journey == -2], checkout, cart)
    return journey


def _offers(state: ChunkState, who: np.ndarray, journey: np.ndarray,
            day: int) -> tuple[np.ndarray, np.ndarray]:
    """The offer attached to each message (-1: none) and the propensity of that choice."""
    offers, rng = state.offers, state.rng
    valid = (offers.valid_days[:, 0] <= day) & (day < offers.valid_days[:, 1])
    eligible = (offers.journey_mask[:, journey].T & valid[None, :]
                & (state.redemptions[who] < offers.max_per_user[None, :]))
    count = eligible.sum(axis=1)
    give = (count > 0) & (rng.random(len(who)) >= P_NO_OFFER)
    offer = np.where(give, sample_rows(eligible.astype(float) + 1e-12, rng), -1)
    propensity = np.where(count > 0, np.where(give, (1 - P_NO_OFFER) / np.maximum(count, 1),
                                              P_NO_OFFER), 1.0)
    return offer, propensity


def simulate_messages(state: ChunkState, day: int) -> None:
    users, rng, events, clock = state.users, state.rng, state.events, state.clock
    reachable = users.consent.copy()
    reachable[:, _APP_CHANNELS] &= state.app_installed[:, None]
    journey = _journeys(state, day)
    who = np.flatnonzero((journey >= 0) & reachable.any(axis=1))
    state.sends[:, day % 8] = 0
    if len(who) == 0:
        return
    journey = journey[who]
    options = reachable[who]
    channel = sample_rows(options.astype(float), rng)
    p_channel = 1.0 / options.sum(axis=1)
    hour = rng.integers(0, 24, len(who))
    ts = clock.local_midnight(users.tz_index[who], day) + hour * 3600 + rng.integers(0, 3600,
                                                                                   len(who))
    offer, p_offer = _offers(state, who, journey, day)
    p_hour = 1.0 / 24
    message = state.messages_sent + np.arange(len(who))
    state.messages_sent += len(who)
    logged_channel = np.array([CHANNELS.index(Channel(name)) for name in MESSAGE_CHANNELS])
    tags = {"channel": logged_channel[channel], "journey": np.where(journey < NO_JOURNEY,
            journey, -1), "campaign_week": np.full(len(who), day // 7), "offer": offer,
            "message": message}
    events.add(EventType.MESSAGE_SENT, user=who, ts=ts, propensity=p_channel * p_hour * p_offer,
               propensity_channel=p_channel, propensity_hour=p_hour, propensity_offer=p_offer,
               **tags)

    recent = state.sends[who].sum(axis=1)
    stage = np.select([day >= users.churn_day[who], day >= users.dormant_day[who]], [2, 1], 0)
    weekend = clock.weekday(day) >= 5
    timing = hour_multiplier(users.peak_hour[who, channel], users.peak_width[who, channel],
                             users.weekend_factor[who, channel], hour, np.full(len(who), weekend))
    p_open = (users.open_rate[who, channel] * timing * np.exp(-users.fatigue[who] *
              np.maximum(recent - 1, 0)) * np.asarray(DORMANT_OPEN_DAMPING)[stage])
    opened = rng.random(len(who)) < p_open
    open_ts = ts + np.minimum(rng.exponential(5400, len(who)), 2 * DAY).astype(np.int64)
    clicked = opened & (rng.random(len(who)) < users.click_rate[who, channel])
    for kind, mask, at in ((EventType.MESSAGE_OPEN, opened, open_ts),
                           (EventType.MESSAGE_CLICK, clicked, open_ts + 45)):
        events.add(kind, user=who[mask], ts=at[mask],
                   **{name: values[mask] for name, values in tags.items()})

    uplift = np.where(offer >= 0, users.uplift[who, np.maximum(offer, 0)], 0.0)
    converted = opened & (rng.random(len(who)) < users.base_conversion[who] + uplift)
    _convert(state, day, who[converted], offer[converted], open_ts[converted],
             {name: values[converted] for name, values in tags.items()})

    pushed = channel == MESSAGE_CHANNELS.index("push")
    gone = pushed & (rng.random(len(who)) < UNINSTALL_PER_PUSH * (1 + recent))
    state.app_installed[who[gone]] = False
    events.add(EventType.APP_UNINSTALL, user=who[gone], ts=ts[gone] + 3600)
    np.add.at(state.sends[:, day % 8], who, 1)


def _convert(state: ChunkState, day: int, who: np.ndarray, offer: np.ndarray, at: np.ndarray,
             tags: dict[str, np.ndarray]) -> None:
    """Attributed purchases after opened messages, and redemptions of attached offers."""
    if len(who) == 0:
        return
    users, offers, rng = state.users, state.offers, state.rng
    allowed = np.where((offer >= 0)[:, None], offers.category_mask[np.maximum(offer, 0)], True)
    category = sample_rows(users.category_pref[who] * allowed + 1e-12, rng)
    item = pick_items(state, who, category)
    ts = at + np.minimum(rng.exponential(6 * 3600, len(who)), 3 * DAY).astype(np.int64)
    record_purchases(state, who, item, ts, day, **tags)
    redeemed = offer >= 0
    state.events.add(EventType.OFFER_REDEEMED, user=who[redeemed], ts=ts[redeemed] + 1,
                     price=state.catalog.item_price[item[redeemed]],
                     **{name: values[redeemed] for name, values in tags.items()})
    np.add.at(state.redemptions, (who[redeemed], offer[redeemed]), 1)
