"""Speakers: who speaks in an episode, and naming them by hand."""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel, Field

from mediaflow import speakers
from mediaflow.config import Settings
from mediaflow.errors import NotFound
from mediaflow.resources import get_store
from service.deps import require_api_key, settings

router = APIRouter(prefix="/episodes", tags=["speakers"])


class SpeakerOut(BaseModel):
    label: str = Field(description="The diarization's label: S1, S2, … in order of first speech.")
    name: str | None = Field(description="The speaker's name when known; never guessed.")
    name_source: str | None = Field(description="Where the name came from: `person` (named by hand), "
                                                "`introduction` (said in the episode, confirmed or completed by "
                                                "the feed's podcast:person tags or the description), "
                                                "`voiceprint` (the show's known voice), `feed` (the one tagged "
                                                "person left for the one unnamed voice).")
    role: str | None = Field(None, description="The name's role in the feed's podcast:person tags (host, guest, "
                                               "…), when it has one.")
    display_name: str = Field(description="The name, or `Speaker N` for an unnamed speaker.")
    talk_time_s: float
    turns: int
    first_words: str


class SpeakerList(BaseModel):
    model_config = {"json_schema_extra": {"examples": [{"method": "ge2e-ahc-v1", "items": [
        {"label": "S1", "name": "Ada Lovelace", "name_source": "introduction", "role": "host",
         "display_name": "Ada Lovelace",
         "talk_time_s": 812.4, "turns": 41, "first_words": "Welcome to The Curious Hour. I'm Ada Lovelace"},
        {"label": "S2", "name": None, "name_source": None, "role": None, "display_name": "Speaker 2",
         "talk_time_s": 640.1, "turns": 39, "first_words": "Thanks for having me. So the first engines"}]}]}}

    method: str
    items: list[SpeakerOut]


class SpeakerName(BaseModel):
    model_config = {"json_schema_extra": {"examples": [{"name": "Charles Babbage"}]}}

    name: str = Field(min_length=1, max_length=100, description="The speaker's name as listeners should see it.")


def _listing(episode_id: str, s: Settings) -> SpeakerList:
    found = speakers.load(episode_id, s)
    if found is None:
        get_store(s.db_url).get_episode(episode_id)  # NotFound for an unknown episode first
        raise NotFound(f"episode {episode_id!r} has no speakers yet")
    transcript = get_store(s.db_url).get_transcript(episode_id)
    return SpeakerList(method=found.diarization.method, items=speakers.summary(transcript, found))


@router.get("/{episode_id}/speakers", response_model=SpeakerList)
def list_speakers(episode_id: str, s: Settings = Depends(settings)):
    """Each speaker with label, name (when known), talk time, turn count and first words."""
    return _listing(episode_id, s)


@router.put("/{episode_id}/speakers/{label}", response_model=SpeakerList, dependencies=[Depends(require_api_key)])
def name_speaker(episode_id: str, label: str, body: SpeakerName = Body(...), s: Settings = Depends(settings)):
    """Name a speaker. The name shows in every transcript format, and the voice is remembered for the
    show, so later episodes of it recognise this speaker by voice."""
    speakers.rename(episode_id, label, body.name, s)
    return _listing(episode_id, s)
