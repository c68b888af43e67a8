"""Synthetic users and their latent truth: tastes, rhythms, reachability and responses."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.synthetic.catalog import Catalog
from training.synthetic.offers import KINDS, OfferSet

COUNTRIES: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("US", 0.30, ("America/New_York", "America/Chicago", "America/Denver",
                  "America/Los_Angeles")),
    ("GB", 0.12, ("Europe/London",)),
    ("FR", 0.10, ("Europe/Paris",)),
    ("DE", 0.10, ("Europe/Berlin",)),
    ("ES", 0.06, ("Europe/Madrid",)),
    ("IT", 0.06, ("Europe/Rome",)),
    ("BR", 0.10, ("America/Sao_Paulo",)),
    ("IN", 0.08, ("Asia/Kolkata",)),
    ("JP", 0.04, ("Asia/Tokyo",)),
    ("AU", 0.04, ("Australia/Sydney",)),
)
TIMEZONES = tuple(tz for _, _, zones in COUNTRIES for tz in zones)

# Channels messages are sent on, with consent rate, open rate at the best hour, click|open.
MESSAGE_CHANNELS = ("email", "push", "in_app", "sms", "whatsapp")
CONSENT = np.array([0.85, 0.65, 1.0, 0.35, 0.25])
OPEN_RATE = np.array([0.40, 0.20, 0.45, 0.55, 0.60])
CLICK_RATE = np.array([0.20, 0.45, 0.30, 0.15, 0.25])
PEAK_SHIFT = np.array([-2.0, 0.0, 0.5, 1.0, 1.5])  # channel peak vs the user's activity peak
HOUR_FLOOR = 0.12  # open multiplier far from the user's preferred hour

RESPONSE_TYPES = ("sure_thing", "persuadable", "lost_cause")
LIFECYCLE_TYPES = ("loyal", "regular", "decliner", "new", "one_and_done")
NEVER = 10**6  # day index meaning "does not happen"


@dataclass
class Population:
    """One chunk of users; every array has the users on its first axis."""

    ids: np.ndarray  # str
    country: np.ndarray  # str
    tz_index: np.ndarray  # int into TIMEZONES
    signup_day: np.ndarray  # int, negative: before the window
    lifecycle_type: np.ndarray  # int into LIFECYCLE_TYPES
    dormant_day: np.ndarray  # int, NEVER if the user stays active
    churn_day: np.ndarray  # int, NEVER if the user never churns
    activity: np.ndarray  # browsing sessions per day while active
    price_sensitivity: np.ndarray  # 0..1
    category_pref: np.ndarray  # (n, C) rows sum to 1
    brand_pref: np.ndarray  # (n, B) P(brand | its category)
    cycle_factor: np.ndarray  # (n, C) the user's cycle as a multiple of the category's
    activity_peak: np.ndarray  # local hour 0..23 of browsing
    app_installed: np.ndarray  # bool, at the start of the window
    consent: np.ndarray  # (n, K) bool over MESSAGE_CHANNELS
    open_rate: np.ndarray  # (n, K) P(open) at the best hour
    click_rate: np.ndarray  # (n, K) P(click | open)
    peak_hour: np.ndarray  # (n, K) int local hour with the best response
    peak_width: np.ndarray  # (n, K) hours
    weekend_factor: np.ndarray  # (n, K) response multiplier on Saturday and Sunday
    fatigue: np.ndarray  # open-rate decay per extra message in the last 7 days
    response_type: np.ndarray  # int into RESPONSE_TYPES
    base_conversion: np.ndarray  # P(convert | message opened, no incentive)
    uplift: np.ndarray  # (n, O) added P(convert | opened) when the offer is attached

    def __len__(self) -> int:
        return len(self.ids)


def hour_multiplier(peak: np.ndarray, width: np.ndarray, weekend: np.ndarray,
                    local_hour: np.ndarray, weekend_day: np.ndarray) -> np.ndarray:
    """Response at a local hour as a share of the best hour's (1.0 at the best hour)."""
    distance = np.abs(local_hour - peak) % 24
    distance = np.minimum(distance, 24 - distance)
    bell = HOUR_FLOOR + (1 - HOUR_FLOOR) * np.exp(-0.5 * (distance / width) ** 2)
    return np.asarray(bell * np.where(weekend_day, weekend, 1.0) / np.maximum(weekend, 1.0))


def _lifecycle(rng: np.random.Generator, n: int, days: int) -> tuple[np.ndarray, ...]:
    signup = np.where(rng.random(n) < 0.25, rng.integers(0, days, n), -rng.integers(1, 720, n))
    new = signup >= 0
    kind = np.where(new, np.where(rng.random(n) < 0.35, 4, 3),
                    rng.choice(3, size=n, p=[0.2, 0.5, 0.3]))
    dormant = np.full(n, NEVER)
    churn = np.full(n, NEVER)
    decliner = kind == 2
    dormant[decliner] = rng.integers(0, days, decliner.sum())
    one_and_done = kind == 4
    dormant[one_and_done] = signup[one_and_done] + rng.integers(3, 20, one_and_done.sum())
    leaving = (decliner | one_and_done) & (rng.random(n) < 0.6)
    churn[leaving] = dormant[leaving] + rng.integers(15, 45, leaving.sum())
    activity = rng.lognormal(np.log(0.11), 0.8, n) * np.where(kind == 0, 2.5, 1.0)
    return signup, kind, dormant, churn, activity


REACTION_SHARE = 0.35  # a persuadable user reacts to each kind of offer with this chance
PRICE_KINDS = [KINDS.index(k) for k in KINDS if k.value in ("voucher", "cashback")]
STRENGTH = (0.08, 0.3)  # uniform per user: what a reaction adds to P(convert | opened)
MATCH_GAIN = 4.0  # an offer's effect grows with the user's taste for its categories
FREE_SATURATION = 0.35  # a free offer's (content) effect, as a share of a lavish one's


def _saturation(offers: OfferSet, sensitivity: np.ndarray) -> np.ndarray:
    """(n, O): how much of a reaction an offer's value buys; the price-sensitive saturate
    sooner."""
    scale = 4.0 + 16.0 * (1 - sensitivity)
    return np.asarray(np.where(offers.value[None, :] > 0,
                               1 - np.exp(-offers.value[None, :] / scale[:, None]),
                               FREE_SATURATION))


def _match(offers: OfferSet, category_pref: np.ndarray) -> np.ndarray:
    """(n, O): the user's taste for the offer's categories, capped at 1."""
    return np.asarray(np.minimum(
        1.0, MATCH_GAIN * (category_pref @ offers.category_mask.T.astype(float))))


def _offer_uplift(rng: np.random.Generator, offers: OfferSet, category_pref: np.ndarray,
                  sensitivity: np.ndarray, response: np.ndarray) -> np.ndarray:
    """True uplift per user x offer: who reacts, to which kinds, how much (see docs)."""
    n = len(sensitivity)
    reacts = rng.random((n, len(KINDS))) < REACTION_SHARE
    reacts[:, PRICE_KINDS] |= rng.random((n, 1)) < sensitivity[:, None]
    reacts &= (response == RESPONSE_TYPES.index("persuadable"))[:, None]
    strength = rng.uniform(*STRENGTH, n)
    return np.asarray(reacts[:, offers.kind] * strength[:, None] * _saturation(offers, sensitivity)
                      * _match(offers, category_pref))


def expected_offer_uplift(offers: OfferSet, category_pref: np.ndarray, sensitivity: np.ndarray,
                          response: np.ndarray) -> np.ndarray:
    """(n, O): the uplift `_offer_uplift` draws, averaged over what it draws per user (which
    kinds they react to, how strongly), so known from the user's traits alone. Choosing
    offers by it is the best any policy can do without observing those draws."""
    chance = np.full((len(sensitivity), len(KINDS)), REACTION_SHARE)
    chance[:, PRICE_KINDS] = 1 - (1 - REACTION_SHARE) * (1 - sensitivity[:, None])
    persuadable = response == RESPONSE_TYPES.index("persuadable")
    return np.asarray(chance[:, offers.kind] * persuadable[:, None] * np.mean(STRENGTH)
                      * _saturation(offers, sensitivity) * _match(offers, category_pref))


def build_population(rng: np.random.Generator, catalog: Catalog, offers: OfferSet,
                     first_user: int, n: int, days: int) -> Population:
    c, k = catalog.n_categories, len(MESSAGE_CHANNELS)
    country_index = rng.choice(len(COUNTRIES), size=n, p=[row[1] for row in COUNTRIES])
    offsets = np.cumsum([0] + [len(row[2]) for row in COUNTRIES])
    zone_counts = np.array([len(row[2]) for row in COUNTRIES])
    tz_index = offsets[country_index] + rng.integers(0, zone_counts[country_index])
    signup, kind, dormant, churn, activity = _lifecycle(rng, n, days)

    category_pref = rng.gamma(0.9 * catalog.category_popularity * c, 1.0, size=(n, c)) + 1e-9
    category_pref /= category_pref.sum(axis=1, keepdims=True)
    sensitivity = rng.beta(2.0, 2.0, n)
    tier_taste = np.stack([sensitivity, np.full(n, 0.5), 1 - sensitivity], axis=1)
    brand_pref = rng.gamma(0.6, 1.0, size=(n, len(catalog.brand_names)))
    brand_pref *= tier_taste[:, catalog.brand_tier] ** 2 + 0.05
    totals = np.zeros((n, c))
    np.add.at(totals.T, catalog.brand_category, brand_pref.T)
    brand_pref /= totals[:, catalog.brand_category]

    app = rng.random(n) < 0.55
    consent = rng.random((n, k)) < CONSENT
    consent[:, MESSAGE_CHANNELS.index("whatsapp")] |= (
        np.isin(country_index, [6, 7]) & (rng.random(n) < 0.5))
    consent[:, MESSAGE_CHANNELS.index("in_app")] = app
    consent[:, MESSAGE_CHANNELS.index("push")] &= app
    concentration = 6.0
    open_rate = rng.beta(OPEN_RATE * concentration, (1 - OPEN_RATE) * concentration, (n, k))
    click_rate = rng.beta(CLICK_RATE * concentration, (1 - CLICK_RATE) * concentration, (n, k))

    archetype_peak = rng.choice(np.array([8, 12, 20, 22]), size=n, p=[0.25, 0.2, 0.4, 0.15])
    activity_peak = (archetype_peak + rng.integers(-1, 2, n)) % 24
    shift = PEAK_SHIFT[None, :] + rng.normal(0, 1.5, (n, k))
    peak_hour = np.rint(activity_peak[:, None] + shift).astype(np.int64) % 24

    response = rng.choice(3, size=n, p=[0.15, 0.6, 0.25])
    base = np.select(
        [response == 0, response == 1],
        [rng.uniform(0.25, 0.4, n), rng.uniform(0.02, 0.1, n)],
        rng.uniform(0.002, 0.02, n),
    )
    return Population(
        ids=np.array([f"u{first_user + i:07d}" for i in range(n)]),
        country=np.array([row[0] for row in COUNTRIES])[country_index],
        tz_index=tz_index,
        signup_day=signup,
        lifecycle_type=kind,
        dormant_day=dormant,
        churn_day=churn,
        activity=activity,
        price_sensitivity=sensitivity,
        category_pref=category_pref,
        brand_pref=brand_pref,
        cycle_factor=rng.lognormal(0.0, 0.25, (n, c)),
        activity_peak=activity_peak,
        app_installed=app,
        consent=consent,
        open_rate=open_rate,
        click_rate=click_rate,
        peak_hour=peak_hour,
        peak_width=rng.uniform(1.5, 3.5, (n, k)),
        weekend_factor=rng.lognormal(0.0, 0.3, (n, k)),
        fatigue=rng.gamma(2.0, 0.08, n),
        response_type=response,
        base_conversion=base,
        uplift=_offer_uplift(rng, offers, category_pref, sensitivity, response),
    )
