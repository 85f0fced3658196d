"""Settings: every knob in one place, from `MEDIAFLOW_*` environment variables or a `.env` file."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

AUDIO_EXTENSIONS = (
    ".mp3", ".m4a", ".aac", ".mp4", ".m4b", ".ogg", ".oga", ".opus", ".flac", ".wav",
    ".webm", ".mkv", ".mov", ".wma", ".aiff", ".aif",
)


class Settings(BaseSettings):
    """mediaflow configuration. Paths may be relative; they resolve against the working directory."""

    model_config = SettingsConfigDict(env_prefix="MEDIAFLOW_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("data"), description="Where audio, the SQLite database and caches live.")
    database_url: str | None = Field(
        None, description="Any SQLAlchemy URL; default: SQLite file `mediaflow.db` in the data dir."
    )
    watch_dir: Path | None = Field(None, description="Folder `process_folder` watches; default: data_dir/inbox.")

    asr_model: str = Field(
        "tiny.en", description="`tiny.en` (bundled) or the path of a local CTranslate2 Whisper model directory."
    )
    asr_compute_type: str = Field("int8", description="CTranslate2 compute type: int8, int8_float32, float32, ...")
    asr_threads: int = Field(0, description="CPU threads for Whisper; 0 = all cores.")
    asr_batch_size: int = Field(8, ge=1, le=64, description="Batched inference size (speech chunks per forward).")
    asr_beam_size: int = Field(5, ge=1, le=10, description="Beam search width; 1 = greedy (faster).")
    asr_language: str | None = Field(None, description="Force a language code; default: detect (English for *.en models).")
    asr_window_s: float = Field(
        600.0, ge=30.0, description="Audio decoded and transcribed per window; bounds memory for long episodes."
    )

    task_runner: Literal["default", "dask"] = Field(
        "default", description="How `process_batch` runs its tasks: `default` (Prefect's thread pool inside the "
                               "flow's process) or `dask` (Dask worker processes, each loading the models once)."
    )
    dask_workers: int = Field(
        2, ge=1, le=64, description="With `dask` and no address: a local cluster of this many worker processes, "
                                    "one task at a time each; Whisper and torch get cores / workers threads."
    )
    dask_address: str | None = Field(
        None, description="With `dask`: an existing scheduler (`tcp://host:8786`) instead of a local cluster. Its "
                          "workers need mediaflow installed, the same data dir and database URL, and PREFECT_API_URL."
    )

    vector_index: Literal["memory", "pgvector"] = Field(
        "memory", description="Where similar-episode search looks: `memory` (exact cosine over a matrix in each "
                              "process) or `pgvector` (a table in the PostgreSQL database; needs its `vector` "
                              "extension), for catalogues shared by many processes or too large for each."
    )

    tts_default_voice: str = Field(
        "auto", description="Voice id used when a request names none; `auto`: the distilled `student` once its "
                            "checkpoint exists, else `teacher` (see `mediaflow.tts.voices.default_voice_id`)."
    )
    # The frontend refuses more than frontend.MAX_CHARS (5000) whatever this says, hence the cap.
    tts_max_chars: int = Field(5000, ge=1, le=5000, description="Longest text one speech request may carry.")
    tts_threads: int = Field(0, ge=0, description="CPU threads per synthesis call; 0 = all cores.")
    tts_concurrency: int = Field(
        1, ge=1, le=16, description="Synthesis calls (one sentence each) running at once across all requests."
    )
    tts_queue: int = Field(
        4, ge=0, le=64, description="Speech requests (and narrations being made) that may wait for a turn beyond "
                                    "`tts_concurrency`; more at once are refused with 429 and `Retry-After`."
    )
    tts_queue_wait_s: float = Field(
        10.0, gt=0, description="Longest a speech request waits for its first turn before it is refused (429)."
    )
    tts_max_audio_s: float = Field(
        900.0, gt=0, le=3600, description="Most seconds of audio one speech request or narration may make (413)."
    )

    allow_private_urls: bool = Field(
        False, description="Let feeds and downloads reach private, loopback and link-local addresses (SSRF guard off)."
    )
    feed_backfill: int = Field(10, ge=0, description="On a feed's first poll, process only its newest N episodes.")

    chapter_titles: Literal["auto", "model", "extractive"] = Field(
        "auto", description="Who writes chapter titles: `model` (the local language model, which also writes "
                            "summaries), `extractive` (keyphrases: fast), `auto` (the model when it is installed)."
    )
    explanations: Literal["auto", "model", "template"] = Field(
        "auto", description="Who writes the sentence saying why an episode is recommended (shown and narrated): "
                            "`model` (the local language model, from the reason's facts alone; cached per pair), "
                            "`template` (fixed sentences: instant), `auto` (the model when it is installed)."
    )
    explanation_wait_s: float = Field(
        8.0, ge=0, le=600, description="Longest one request waits for model-written explanations (a list's "
                                       "together); past it the template's sentence is given and the model's is "
                                       "finished in the background and cached for the next request."
    )
    llm_threads: int = Field(1, ge=1, description="CPU threads for the language model (more spin on a busy machine).")

    models_idle_s: float = Field(
        900.0, ge=0, description="The service unloads its models (Whisper, embedder, voices) after this many seconds "
                                 "without use, and loads them again on the next request; 0 keeps them loaded."
    )
    lease_s: float = Field(
        60.0, ge=2.0, description="A run renews its hold on an episode every quarter of this; an episode whose hold "
                                  "ran out this long ago is taken to be abandoned (its process died) and is resumed."
    )

    max_upload_mb: int = Field(2048, ge=1, description="Largest accepted input file.")
    max_duration_h: float = Field(6.0, gt=0, description="Longest accepted episode.")

    api_key: SecretStr | None = Field(None, description="If set, write endpoints require `Authorization: Bearer <key>`.")
    read_requires_key: bool = Field(False, description="Reads need the API key too (the player page and /health stay open).")
    host: str = "127.0.0.1"
    port: int = 8000

    @property
    def data_path(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def audio_dir(self) -> Path:
        return self.data_path / "audio"

    @property
    def inbox_dir(self) -> Path:
        return (self.watch_dir.expanduser().resolve() if self.watch_dir else self.data_path / "inbox")

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_path / 'mediaflow.db'}"

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def threads(self) -> int:
        return self.asr_threads or os.cpu_count() or 1


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
