"""GET /v1/models and POST /v1/models/reload (switch versions without a restart)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.auth import Admin, Decide
from api.schemas import error_responses
from api.services import ServicesDep

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("", summary="The version served, the one promoted, and every registered one")
def list_models(services: ServicesDep, _: Decide) -> dict[str, Any]:
    serving = services.engine.models
    return {"serving": serving.version if serving else None,
            "promoted": services.registry.promoted(),
            "versions": services.registry.versions()}


@router.post("/reload", summary="Serve the promoted version (the old one stays on failure)",
             responses=error_responses(409))
def reload_models(services: ServicesDep, _: Admin) -> dict[str, Any]:
    """Loads the promoted version in the worker answering; every other worker follows
    within `others_within_s` (NBO_MODEL_POLL_S; null: they do not follow by themselves)."""
    return {"serving": services.reload_models(),
            "others_within_s": services.settings.model_poll_s or None}
