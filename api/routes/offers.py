"""The offer catalog: GET /v1/offers, GET/PUT/DELETE /v1/offers/{offer_id}."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Path

from api.auth import Admin, Decide
from api.schemas import error_responses
from api.services import ServicesDep
from decisions.catalog import BudgetStatus
from features.contract.offers import Offer, OfferId, OfferInput
from nbo.errors import DataContractError, NboError

router = APIRouter(prefix="/v1/offers", tags=["offers"])
OfferIdPath = Annotated[OfferId, Path()]
"""An offer id in the path, taken as the body's is (trimmed, then checked)."""


class UnknownOffer(NboError):
    http_status = 404


def _described(offer: Offer, status: BudgetStatus) -> dict[str, Any]:
    return {**offer.model_dump(mode="json"), "budget_status": asdict(status)}


def _with_budget(offer: Offer, services: ServicesDep) -> dict[str, Any]:
    """The offer with its own budget status (not that of a version written since)."""
    return _described(offer, services.catalog.statuses({offer.offer_id: offer})[offer.offer_id])


@router.get("", summary="Every offer, with its budget status")
def list_offers(services: ServicesDep, _: Decide) -> dict[str, Any]:
    snapshot = services.catalog.snapshot()
    budgets = services.catalog.statuses({offer.offer_id: offer for offer in snapshot.offers})
    return {"version": snapshot.version,
            "offers": [_described(offer, budgets[offer.offer_id]) for offer in snapshot.offers]}


@router.get("/{offer_id}", summary="One offer, with its budget status",
            responses=error_responses(404))
def get_offer(offer_id: OfferIdPath, services: ServicesDep, _: Decide) -> dict[str, Any]:
    offer = services.catalog.snapshot().get(offer_id)
    if offer is None:
        raise UnknownOffer(f"no offer {offer_id!r} in the catalog (GET /v1/offers lists them)")
    return _with_budget(offer, services)


@router.put("/{offer_id}", summary="Create or replace an offer",
            responses=error_responses(400))
def put_offer(offer_id: OfferIdPath, offer: OfferInput, services: ServicesDep,
              _: Admin) -> dict[str, Any]:
    """A 422 names each unknown field, unknown segment or non-finite amount: a typo'd rule
    must never vanish into a laxer offer."""
    if offer.offer_id != offer_id:
        raise DataContractError(f"the body's offer_id {offer.offer_id!r} differs from the "
                                f"path's {offer_id!r}: make them the same")
    version = services.catalog.put(offer)
    return {"version": version, "offer": _with_budget(offer, services)}


@router.delete("/{offer_id}", summary="Remove an offer", responses=error_responses(404))
def delete_offer(offer_id: OfferIdPath, services: ServicesDep, _: Admin) -> dict[str, Any]:
    version = services.catalog.delete(offer_id)
    if version is None:
        raise UnknownOffer(f"no offer {offer_id!r} in the catalog (GET /v1/offers lists them)")
    return {"version": version, "deleted": offer_id}
