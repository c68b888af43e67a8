"""What the simulation remembers about each user of a chunk from one day to the next."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from training.synthetic.catalog import Catalog
from training.synthetic.clock import Clock
from training.synthetic.events import EventBuffer
from training.synthetic.offers import OfferSet
from training.synthetic.population import NEVER, Population

NEVER_DAY = -float(NEVER)


@dataclass
class ChunkState:
    rng: np.random.Generator
    catalog: Catalog
    offers: OfferSet
    clock: Clock
    users: Population
    last_purchase: np.ndarray  # (n, C) day of the last purchase, NEVER_DAY if none
    last_active: np.ndarray  # (n,) day of the last session or purchase
    abandoned_day: np.ndarray  # (n,) day of the last abandoned cart or checkout
    abandoned_checkout: np.ndarray  # (n,) bool: that abandonment was at checkout
    app_installed: np.ndarray  # (n,) bool
    sends: np.ndarray  # (n, 8) messages per day, a ring: today and the 7 days before
    redemptions: np.ndarray  # (n, O) offers redeemed so far
    events: EventBuffer = field(default_factory=EventBuffer)
    messages_sent: int = 0
    activity: float = 1.0  # how often users shop (browse and restock), vs the default world

    @classmethod
    def start(cls, rng: np.random.Generator, catalog: Catalog, offers: OfferSet, clock: Clock,
              users: Population, activity: float = 1.0) -> ChunkState:
        """Initial state, with purchase histories before the window for existing users."""
        n, c = len(users), catalog.n_categories
        cycle = catalog.cycle_days[None, :] * users.cycle_factor
        existing = (users.signup_day < 0)[:, None]
        bought = existing & (rng.random((n, c)) < np.minimum(1.0, 4 * users.category_pref))
        phase = rng.random((n, c)) * np.minimum(cycle, -users.signup_day[:, None])
        return cls(
            rng=rng,
            catalog=catalog,
            offers=offers,
            clock=clock,
            users=users,
            last_purchase=np.where(bought, -phase, NEVER_DAY),
            last_active=np.where(users.signup_day < 0, -rng.integers(0, 15, n),
                                 users.signup_day).astype(np.float64),
            abandoned_day=np.full(n, NEVER_DAY),
            abandoned_checkout=np.zeros(n, dtype=bool),
            app_installed=users.app_installed.copy(),
            sends=np.zeros((n, 8), dtype=np.int64),
            redemptions=np.zeros((n, len(offers)), dtype=np.int64),
            activity=activity,
        )

    def due(self, day: int) -> np.ndarray:
        """(n, C) how due each category is for a repeat purchase: ~0 just after, ~1 past."""
        cycle = self.catalog.cycle_days[None, :] * self.users.cycle_factor
        elapsed = (day - self.last_purchase) / cycle
        hazard = 1 / (1 + np.exp(-4 * (np.minimum(elapsed, 50) - 1)))
        return np.where(self.last_purchase > NEVER_DAY, hazard, 0.0)

    def activity_level(self, day: int) -> np.ndarray:
        """(n,) `activity` while active, lower once dormant, 0 once churned or before
        signup."""
        u = self.users
        level = np.where(day < u.dormant_day, 1.0, np.where(day < u.churn_day, 0.15, 0.0))
        return level * (u.signup_day <= day) * self.activity


def sample_rows(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One column index per row, drawn with probability proportional to the row's weights."""
    cumulative = np.cumsum(weights, axis=1)
    draw = rng.random(len(weights)) * cumulative[:, -1]
    picked = (cumulative < draw[:, None]).sum(axis=1)
    return np.asarray(np.minimum(picked, weights.shape[1] - 1))


def pick_items(state: ChunkState, users: np.ndarray, categories: np.ndarray) -> np.ndarray:
    """An item per (user, category): brand by the user's taste, then an item of the brand."""
    catalog, rng = state.catalog, state.rng
    slots = catalog.brand_slots[categories]
    taste = state.users.brand_pref[users[:, None], np.maximum(slots, 0)] * (slots >= 0)
    brands = slots[np.arange(len(slots)), sample_rows(taste, rng)]
    first, count = catalog.brand_items[brands, 0], catalog.brand_items[brands, 1]
    return np.asarray(first + (rng.random(len(brands)) * count).astype(np.int64))
