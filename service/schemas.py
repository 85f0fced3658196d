"""Request and response bodies: the OpenAPI contract."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class EpisodeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    title: str
    description: str | None = None
    show: str | None = None
    published_at: datetime | None = None
    status: str
    error: str | None = None
    source_name: str
    duration_s: float
    size_bytes: int
    sample_rate: int
    channels: int
    codec: str
    container: str
    loudness_dbfs: float | None = None
    peak_dbfs: float | None = None
    created_at: datetime
    updated_at: datetime


class EpisodeList(BaseModel):
    items: list[EpisodeOut]
    total: int
    limit: int
    offset: int


class RegisterPath(BaseModel):
    path: str
    title: str | None = None


class Health(BaseModel):
    status: str
    version: str
    database: str
    episodes: int


class Suggestion(BaseModel):
    episode_id: str
    title: str
    show: str
    score: float
    reason: dict = Field(description="Structured: kind, source and target episodes, shared terms, chapters, scores.")
    explanation: str = Field(description="One or two sentences naming the episode and why; what the narration speaks.")


class SuggestionList(BaseModel):
    items: list[Suggestion]


class HistoryEntry(BaseModel):
    episode_id: str
    fraction: float | None = Field(None, ge=0, le=1, description="Share of the episode played.")
    seconds: float | None = Field(None, ge=0, description="Or: seconds played.")
    played_at: datetime | None = None


class RecommendationRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"history": [{"episode_id": "3f2a9c0d1e4b5a6c", "fraction": 0.9}], "k": 5, "per_show_cap": 2}]})

    history: list[HistoryEntry] = Field(default_factory=list, max_length=500,
                                        description="What the listener heard, oldest first. Empty: newest episodes.")
    k: int = Field(10, ge=1, le=100)
    per_show_cap: int | None = Field(3, ge=1, description="At most this many episodes of one show.")
    exclude: list[str] = Field(default_factory=list, max_length=1000)
