"""Request and response bodies: the OpenAPI contract."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class EpisodeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    title: str
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
