"""A day of shopping: sessions, searches, views, wishlists, carts, checkouts, purchases."""

from __future__ import annotations

import numpy as np

from features.contract.schema import Channel, EventType
from training.synthetic.clock import DAY
from training.synthetic.events import CHANNELS
from training.synthetic.state import ChunkState, pick_items, sample_rows

P_SEARCH = 0.3
P_WISHLIST = 0.03
P_CART_BROWSING = 0.06  # chance of a cart when the category is not due
P_CART_DUE = 0.85  # added chance when it is due for a repeat purchase
P_CHECKOUT = 0.65  # given a cart
P_PURCHASE = 0.75  # given a checkout
P_REMOVE = 0.2  # given a cart not checked out
P_RETURN = 0.05  # of durable purchases
P_REPLENISH = 0.35  # daily chance of a restocking visit to a fully due consumable
WEEKEND_BOOST = 1.2


def simulate_browsing(state: ChunkState, day: int) -> None:
    users, rng, catalog, events = state.users, state.rng, state.catalog, state.events
    due = state.due(day)
    level = state.activity_level(day)
    weekend = state.clock.weekday(day) >= 5
    browsing = np.repeat(np.arange(len(users)), rng.poisson(
        users.activity * level * (WEEKEND_BOOST if weekend else 1.0)))
    restock = P_REPLENISH * due * level[:, None] * catalog.consumable[None, :]
    restocking, restocked = np.nonzero(rng.random(due.shape) < restock)
    who = np.concatenate([browsing, restocking])
    if len(who) == 0:
        return
    category = np.concatenate([sample_rows(users.category_pref[browsing], rng), restocked])
    own_hour = rng.random(len(who)) < catalog.shopping_hour_share[category]
    hour = np.where(rng.random(len(who)) < 0.7,
                    np.where(own_hour, np.nan_to_num(catalog.shopping_hour[category]),
                             users.activity_peak[who]) + rng.normal(0, 2.5, len(who)),
                    rng.uniform(0, 24, len(who))) % 24
    start = state.clock.local_midnight(users.tz_index[who], day) + (hour * 3600).astype(np.int64)
    in_app = state.app_installed[who] & (rng.random(len(who)) < 0.7)
    channel = np.where(in_app, CHANNELS.index(Channel.IN_APP), CHANNELS.index(Channel.WEB))
    state.last_active[who] = day

    searched = rng.random(len(who)) < P_SEARCH
    events.add(EventType.SEARCH, user=who[searched], ts=start[searched] - 20,
               category=category[searched], channel=channel[searched])

    views = 1 + rng.poisson(1.5, len(who))
    session = np.repeat(np.arange(len(who)), views)
    gaps = rng.exponential(60.0, len(session)).astype(np.int64) + 5
    firsts = np.cumsum(views) - views
    running = np.cumsum(gaps)
    elapsed = running - np.repeat(running[firsts] - gaps[firsts], views)
    view_ts = start[session] + elapsed
    item = pick_items(state, who[session], category[session])
    events.add(EventType.VIEW, user=who[session], ts=view_ts, item=item,
               price=catalog.item_price[item], channel=channel[session])
    wished = rng.random(len(session)) < P_WISHLIST
    events.add(EventType.WISHLIST, user=who[session][wished], ts=view_ts[wished] + 5,
               item=item[wished], price=catalog.item_price[item[wished]],
               channel=channel[session][wished])

    last = np.cumsum(views) - 1
    chosen, at = item[last], view_ts[last]
    due_now = due[who, category]
    cart = rng.random(len(who)) < P_CART_BROWSING + P_CART_DUE * due_now
    checkout = cart & (rng.random(len(who)) < P_CHECKOUT)
    bought = checkout & (rng.random(len(who)) < P_PURCHASE)
    removed = cart & ~checkout & (rng.random(len(who)) < P_REMOVE)
    common = {"item": chosen, "price": catalog.item_price[chosen], "channel": channel}
    for kind, mask, delay in ((EventType.ADD_TO_CART, cart, 20),
                              (EventType.REMOVE_FROM_CART, removed, 90),
                              (EventType.CHECKOUT, checkout, 120)):
        events.add(kind, user=who[mask], ts=at[mask] + delay,
                   **{name: values[mask] for name, values in common.items()})
    abandoned = (cart & ~checkout & ~removed) | (checkout & ~bought)
    state.abandoned_day[who[abandoned]] = day
    state.abandoned_checkout[who[abandoned]] = checkout[abandoned]
    record_purchases(state, who[bought], chosen[bought], at[bought] + 240, day,
                     channel=channel[bought])


def record_purchases(state: ChunkState, who: np.ndarray, item: np.ndarray, ts: np.ndarray,
                     day: int, **columns: np.ndarray | int) -> None:
    """Purchase events (with later returns of some durables) and the repeat-cycle clock."""
    catalog, rng = state.catalog, state.rng
    category = catalog.item_category[item]
    consumable = catalog.consumable[category]
    quantity = 1 + rng.poisson(np.where(consumable, 0.4, 0.05))
    state.events.add(EventType.PURCHASE, user=who, ts=ts, item=item, quantity=quantity,
                     price=catalog.item_price[item], **columns)
    state.last_purchase[who, category] = day
    state.last_active[who] = day
    returned = ~consumable & (rng.random(len(who)) < P_RETURN)
    later = ts[returned] + rng.integers(3, 15, returned.sum()) * DAY
    state.events.add(EventType.PURCHASE, user=who[returned], ts=later, item=item[returned],
                     quantity=-quantity[returned], price=catalog.item_price[item[returned]])
