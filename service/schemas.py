"""Request and response bodies: the OpenAPI contract."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class EpisodeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [{
        "id": "3f5a0c9e2b7d41c8a6e1f0d2c4b8a9e7f1d3c5b7a9e1f3d5c7b9a1e3f5d7c9b1", "title": "Volcanoes at dawn",
        "description": "Why some eruptions explode and others flow.", "show": "The Curious Hour",
        "published_at": "2026-11-02T06:00:00Z", "status": "done", "error": None,
        "source_name": "curious-hour-12.mp3", "duration_s": 1834.2, "size_bytes": 29347200,
        "sample_rate": 44100, "channels": 2, "codec": "mp3", "container": "mp3", "loudness_dbfs": -19.4,
        "peak_dbfs": -1.2, "created_at": "2026-11-30T09:14:03Z", "updated_at": "2026-11-30T09:15:41Z"}]})

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


class Health(BaseModel):
    status: str
    version: str
    database: str
    episodes: int
    models_loaded: list[str] = Field(description="Models this server holds in memory now (whisper, embedder, "
                                                 "speaker-encoder, voices, kokoro, g2p, piper); empty after an "
                                                 "idle unload.")
    models_idle_s: float = Field(description="Seconds without use after which the models are unloaded; 0 = never.")
    models_unloaded_at: datetime | None = Field(None, description="When the models were last unloaded for idleness.")


class Suggestion(BaseModel):
    episode_id: str
    title: str
    show: str
    score: float
    reason: dict = Field(description="Structured: kind, source and target episodes, shared terms, chapters, scores.")
    explanation: str = Field(description="One or two sentences naming the episode and why; what the narration speaks.")
    explanation_method: str = Field(
        "template", description="`model`: written by the local language model from the reason's facts alone (kept "
                                "per pair); `template`: a fixed sentence (the `explanations` setting, or the "
                                "model's failed a check or was not ready within `explanation_wait_s`).")


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


class TermOut(BaseModel):
    text: str
    score: float = Field(description="Relevance to the episode (or chapter), highest first.")
    count: int = Field(description="How often it was said.")


class ChapterFeaturesOut(BaseModel):
    index: int
    start: float
    end: float
    title: str
    keywords: list[TermOut]
    summary: str | None = Field(None, description="One or two sentences by the language model, when it wrote them.")
    embedding: str | None = Field(None, description="With `vectors=true`: the chapter's vector, base64 float32.")


class AudioFeaturesOut(BaseModel):
    """What the audio says, independent of the words (absent when the features were made without audio)."""

    duration_s: float = Field(description="Seconds of decoded audio.")
    loudness_dbfs: float | None = None
    peak_dbfs: float | None = None
    sound_fraction: float = Field(description="Of the whole duration, the share above the silence gate (0–1).")
    music_fraction: float = Field(description="Of the sounding audio (1 s windows), the share that sounds like music.")
    speech_share_of_sound: float = Field(
        description="Of the sounding audio (1 s windows), the share that sounds like speech, words or not: "
                    "1 − `music_fraction`. Not the top-level `transcribed_fraction`. Stored features from "
                    "before were read from `speech_fraction`.")
    label: str = Field(description="`speech`, `music`, `mixed` or `silence`.")
    low_energy_ratio: float = Field(description="Means over the sounding windows, for inspection and tuning.")
    zcr_cv: float
    mod4: float
    method: str


class SpeakerFactsOut(BaseModel):
    count: int = Field(description="Distinct voices found.")
    host: str | None = Field(description="The host's name: the speaker the feed's podcast:person tags call host, else "
                                         "the one who opens the episode, "
                                         "when known.")
    host_share: float | None = Field(description="That speaker's share of all talk time (0-1).")
    guests: list[str] = Field(description="Named speakers other than the host.")


class FeaturesOut(BaseModel):
    """An episode's content features (`GET /episodes/{id}/features`)."""

    version: str = Field(description="The features method; features of another version are recomputed.")
    model_id: str = Field(description="The embedding model.")
    dim: int = Field(description="The embeddings' dimension.")
    title: str
    language: str
    language_probability: float
    duration_s: float
    word_count: int = Field(description="Transcribed words. Under 10, the episode has no speech to recommend it by.")
    words_per_minute: float | None = None
    transcribed_fraction: float | None = Field(
        None, description="Of the whole duration, the share covered by transcribed words (0–1; segment times "
                          "when there are no word times, see `speech_timing`). Once named `speech_fraction`.")
    speech_to_silence: float | None = Field(
        None, description="Seconds inside transcribed words per second outside them (from `transcribed_fraction`).")
    speech_timing: str | None = Field(None, description="`words`, `segments` or null: what `transcribed_fraction` "
                                                        "was measured from.")
    keywords: list[TermOut]
    entities: list[TermOut]
    chapters: list[ChapterFeaturesOut]
    audio: AudioFeaturesOut | None = Field(None, description="Audio descriptors; null when made without the audio.")
    speakers: SpeakerFactsOut | None = Field(None, description="Who speaks; null when the episode is not diarized.")
    vector_encoding: str | None = Field(None, description="With `vectors=true`: `base64-float32-le`.")
    embedding: str | None = Field(None, description="With `vectors=true`: the episode's vector, base64 float32.")
    semantic_id: str | None = Field(None, description="The episode's semantic ID, once the codebook is fitted.")
    codebook_version: str | None = None
    summary: str | None = Field(None, description="The episode in one or two sentences, by the language model.")
    queries: list[str] | None = Field(None, description="Synthetic search queries a listener might type to find "
                                                        "the episode, by the language model (searched).")
