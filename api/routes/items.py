"""GET /v1/items/{item_id}/similar: the items most like one (for "you may also like"
blocks), from the served version's ALS item factors."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Decide
from api.routes.decisions import json_response
from api.schemas import IdPath, error_responses
from api.services import ServicesDep
from models.items import SIMILAR
from nbo.errors import NboError

router = APIRouter(prefix="/v1/items", tags=["items"])


class SimilarOptions(BaseModel):
    """The query: an unknown parameter is refused, as on the decision routes."""

    model_config = ConfigDict(extra="forbid")

    n: int = Field(default=10, ge=1, le=SIMILAR, description="how many similar items (the "
                   "model keeps this many an item)")


class UnknownItem(NboError):
    http_status = 404


class NoItemModel(NboError):
    http_status = 409


@router.get("/{item_id:id}/similar", summary="The items most like one",  # ids may hold /
            responses=error_responses(404, 409))
def similar_items(item_id: IdPath,
                  options: Annotated[SimilarOptions, Query()], services: ServicesDep,
                  _: Decide) -> Response:
    models = services.engine.models
    recommender = models.items if models else None
    if models is None or recommender is None:
        raise NoItemModel("the served model version has no item model: train a new version "
                          "with `nbo train`, promote it and reload")
    if item_id not in recommender.row:
        raise UnknownItem(f"item {item_id!r} is not known to model version {models.version} "
                          "(no interactions with it in the training data)")
    similar = recommender.similar(item_id, options.n)
    return json_response({"item_id": item_id, "model_version": models.version, "similar": [
        {"item_id": other, "score": score} for other, score in similar]})
