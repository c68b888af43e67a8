"""The synthetic offer catalog: every kind of offer, with eligibility, budgets and windows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from features.contract.schema import Journey, LifecycleStage, OfferKind
from training.synthetic.catalog import Catalog

KINDS = tuple(OfferKind)

# offer_id, kind, value, cost, categories, journeys, lifecycle stages, max per user, days valid
OFFER_TABLE: tuple[tuple[str, OfferKind, float, float, tuple[str, ...], tuple[Journey, ...],
                         tuple[LifecycleStage, ...], int, tuple[float, float]], ...] = (
    ("welcome-10", OfferKind.VOUCHER, 10.0, 10.0, (), (Journey.WELCOME,),
     (LifecycleStage.NEW,), 1, (0.0, 1.0)),
    ("voucher-5", OfferKind.VOUCHER, 5.0, 5.0, (), (), (), 3, (0.0, 1.0)),
    ("voucher-15-beauty", OfferKind.VOUCHER, 15.0, 15.0, ("skincare", "haircare", "fragrance"),
     (), (), 1, (0.0, 1.0)),
    ("cart-save-8", OfferKind.VOUCHER, 8.0, 8.0, (),
     (Journey.CART_ABANDONED, Journey.CHECKOUT_ABANDONED), (), 2, (0.0, 1.0)),
    ("cashback-5pct", OfferKind.CASHBACK, 4.0, 3.0, (), (), (), 3, (0.0, 1.0)),
    ("cashback-pets", OfferKind.CASHBACK, 6.0, 4.5, ("pet_food",), (), (), 2, (0.0, 0.6)),
    ("free-shipping", OfferKind.FREE_SHIPPING, 4.9, 4.9, (), (), (), 3, (0.0, 1.0)),
    ("free-shipping-cart", OfferKind.FREE_SHIPPING, 4.9, 4.9, (),
     (Journey.CART_ABANDONED, Journey.CHECKOUT_ABANDONED), (), 2, (0.0, 1.0)),
    ("top-up-bonus", OfferKind.TOP_UP, 5.0, 5.0, (), (), (), 2, (0.3, 1.0)),
    ("membership-month", OfferKind.MEMBERSHIP, 9.0, 2.5, (), (),
     (LifecycleStage.ACTIVE, LifecycleStage.LOYAL), 1, (0.0, 1.0)),
    ("winback-20", OfferKind.VOUCHER, 20.0, 20.0, (), (Journey.WIN_BACK,),
     (LifecycleStage.AT_RISK, LifecycleStage.DORMANT, LifecycleStage.CHURNED), 1, (0.0, 1.0)),
    ("coffee-guide", OfferKind.CONTENT, 0.0, 0.0, ("coffee",), (), (), 5, (0.0, 1.0)),
    ("style-lookbook", OfferKind.CONTENT, 0.0, 0.0, ("fashion_women", "fashion_men", "shoes"),
     (), (), 5, (0.0, 1.0)),
)


@dataclass(frozen=True)
class OfferSet:
    """The offers as arrays for the simulation, and as records for offers.yaml."""

    ids: np.ndarray  # (O,) str
    kind: np.ndarray  # (O,) int into KINDS
    value: np.ndarray  # (O,) float
    cost: np.ndarray  # (O,) float
    category_mask: np.ndarray  # (O, C) bool; all True when the offer is for any category
    journey_mask: np.ndarray  # (O, J+1) bool; column J is "no journey" (broadcasts)
    max_per_user: np.ndarray  # (O,) int
    valid_days: np.ndarray  # (O, 2) first valid day, first day no longer valid
    records: list[dict[str, Any]]

    def __len__(self) -> int:
        return len(self.ids)


def build_offers(catalog: Catalog, start: datetime, days: int, users: int) -> OfferSet:
    journeys = list(Journey)
    category_index = {str(name): index for index, name in enumerate(catalog.category_names)}
    n = len(OFFER_TABLE)
    category_mask = np.ones((n, catalog.n_categories), dtype=bool)
    journey_mask = np.zeros((n, len(journeys) + 1), dtype=bool)
    valid_days = np.zeros((n, 2), dtype=np.int64)
    records: list[dict[str, Any]] = []
    for row, (offer_id, kind, value, cost, cats, offer_journeys, stages, per_user,
              window) in enumerate(OFFER_TABLE):
        if cats:
            category_mask[row] = False
            category_mask[row, [category_index[c] for c in cats]] = True
        if offer_journeys:
            journey_mask[row, [journeys.index(j) for j in offer_journeys]] = True
        else:
            journey_mask[row, :] = True
        first, last = int(window[0] * days), max(int(window[1] * days), 1)
        valid_days[row] = (first, last)
        records.append({
            "offer_id": offer_id,
            "kind": kind.value,
            "value": value,
            "cost": cost,
            "categories": list(cats),
            "channels": [],
            "journeys": [j.value for j in offer_journeys],
            "min_order_value": round(value * 3, 2) if kind is OfferKind.VOUCHER else 0.0,
            "eligibility": {"lifecycle_stages": [s.value for s in stages], "segments": []},
            "budget": round(max(cost, 1.0) * users * 0.05, 2) if cost > 0 else None,
            "max_per_user": per_user,
            "valid_from": (start + timedelta(days=first)).isoformat(),
            # offers running to the window's end stay on after it (the demo serves them)
            "valid_to": None if window[1] >= 1.0 else (start + timedelta(days=last)).isoformat(),
        })
    return OfferSet(
        ids=np.array([row[0] for row in OFFER_TABLE]),
        kind=np.array([KINDS.index(row[1]) for row in OFFER_TABLE]),
        value=np.array([row[2] for row in OFFER_TABLE]),
        cost=np.array([row[3] for row in OFFER_TABLE]),
        category_mask=category_mask,
        journey_mask=journey_mask,
        max_per_user=np.array([row[7] for row in OFFER_TABLE]),
        valid_days=valid_days,
        records=records,
    )
