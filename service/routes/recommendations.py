"""Recommendations for a listener: history in, ranked episodes with reasons and explanations out."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from mediaflow.config import Settings
from service.deps import settings
from service.schemas import RecommendationRequest, SuggestionList

router = APIRouter(prefix="/recommendations", tags=["recommendations"])


@router.post("", response_model=SuggestionList)
def create_recommendations(body: RecommendationRequest, s: Settings = Depends(settings)):
    """Candidates from the history's content neighbours, ranked for similarity, freshness and
    diversity, capped per show; each with its structured reason and a sentence saying why."""
    from mediaflow.catalogue import recommend_for

    history = [h.model_dump(exclude_none=True) for h in body.history]
    items = recommend_for(history, s, k=body.k, per_show_cap=body.per_show_cap, exclude=body.exclude)
    return SuggestionList(items=[x.to_dict() for x in items])
