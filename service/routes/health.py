from fastapi import APIRouter, Depends

from mediaflow.store import Store
from service.deps import store
from service.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
def health(db: Store = Depends(store)) -> Health:
    """Liveness and a database round trip."""
    return Health(status="ok", version="0.1.0", database=db.engine.dialect.name, episodes=db.count())
