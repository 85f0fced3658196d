from datetime import datetime, timezone

from fastapi import APIRouter, Depends, Request

from mediaflow import resources
from mediaflow.config import Settings
from mediaflow.store import Store
from service.deps import settings, store
from service.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
def health(request: Request, db: Store = Depends(store), s: Settings = Depends(settings)) -> Health:
    """Liveness, a database round trip, and which models are loaded (they are unloaded when idle)."""
    idle = getattr(request.app.state, "idle", None)
    unloaded = idle.unloaded_at if idle is not None else None
    return Health(status="ok", version="0.1.0", database=db.engine.dialect.name, episodes=db.count(),
                  models_loaded=resources.loaded_models(), models_idle_s=s.models_idle_s,
                  models_unloaded_at=datetime.fromtimestamp(unloaded, timezone.utc) if unloaded else None)
