"""Request and response bodies of the speech endpoints (`service/routes/tts.py`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mediaflow.tts.voices import MAX_SPEED, MIN_SPEED
from service.schemas import Suggestion

_TEXT = ("What to say, in English: up to `tts_max_chars` characters (5000 by default) and, once numbers, dates, "
         "money, abbreviations and URLs are written out as words, up to 1,500 words and `tts_max_audio_s` seconds "
         "of audio (900 by default) at the speed asked. Markup (SSML, HTML) and control characters are not read "
         "out: tags are dropped, `<break>` and block tags end a sentence.")
_SPEED = (f"{MIN_SPEED} to {MAX_SPEED} (OpenAI's range); 1.0 is normal, 2.0 twice as fast. Checked here: outside "
          "the range is a 422.")
_REFERENCE = ("A reference figure, measured once by bench/tts.py on the project's reference machine (see "
              "`speed_measured`), not on this server; null when none was measured for this voice.")


class SpeechIn(BaseModel):
    """`POST /tts`."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [  # a misspelt field is an error
        {"text": "Because you liked Deep Time, try Field Notes: it covers volcanoes and ancient oceans.",
         "speed": 1.0, "format": "mp3", "stream": True},
        {"text": "Episode 12 starts at 9:30 a.m. on March 3rd.", "format": "wav", "stream": False},
    ]})

    text: str = Field(description=_TEXT)
    voice: str | None = Field(None, description="A voice id from `GET /tts/voices` or an OpenAI voice name, in any "
                                                "case; default: the configured one.")
    speed: float = Field(1.0, ge=MIN_SPEED, le=MAX_SPEED, description=_SPEED)
    format: Literal["wav", "mp3", "ogg-opus", "flac", "aac", "pcm"] = Field(
        "wav", description="`pcm` is raw 16-bit signed little-endian mono at the voice's sample rate "
                           "(24 kHz for Kokoro voices; the rate is in the Content-Type and `X-Sample-Rate`).")
    stream: bool = Field(
        True, description="Send audio sentence by sentence as it is made (chunked). `false`: one finished file "
                          "with exact lengths in its headers (a seekable WAV/MP3/FLAC), after the whole text is made.")


class WordOut(BaseModel):
    """A word as the voice said it: the normalised text's word ("twenty twenty-four" for "2024"), punctuation
    kept, and when it is said, in seconds from the start of the audio."""

    word: str
    start: float
    end: float


class CaptionedSpeechOut(BaseModel):
    """`POST /tts/captioned`: the audio and when each word is said in it."""

    audio: str = Field(description="The audio file in `format`, base64 (standard alphabet, padded).")
    format: str = Field(description="The format asked for (`wav`, `mp3`, ...): a finished file with exact lengths.")
    media_type: str = Field(description="Its Content-Type, as `/tts` would send it.")
    sample_rate: int
    voice: str = Field(description="The voice id that spoke.")
    duration: float = Field(description="Seconds of audio.")
    words: list[WordOut] = Field(description="Every spoken word in order, with its start and end (seconds), from "
                                             "the durations the voice predicted for its phonemes.")


class VoiceRef(BaseModel):
    """OpenAI's custom-voice form, `{"id": "..."}`; here the id is one of our voice ids or OpenAI names."""

    id: str


class OpenAISpeechIn(BaseModel):
    """`POST /v1/audio/speech`, as OpenAI's client sends it. Fields we do not use are accepted and ignored."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [
        {"model": "tts-1", "input": "Since you like history, try Ep. 101: The Fall of Constantinople, 1453.",
         "voice": "alloy", "response_format": "mp3", "speed": 1.0},
    ]})

    model: str = Field("tts-1", description="Accepted for compatibility (`tts-1`, `tts-1-hd`, `gpt-4o-mini-tts`, "
                                            "anything); it selects nothing: the voice does.")
    input: str = Field(description=_TEXT)
    voice: str | VoiceRef | None = Field(
        None, description="One of our voice ids, or an OpenAI voice name mapped to one of ours (see "
                          "`GET /v1/audio/voices`, `openai_voices`); default: the configured voice.")
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = Field(
        "mp3", description="`opus` is Opus in Ogg; `pcm` is raw 16-bit signed little-endian mono at 24 kHz "
                           "(the voice's rate: Piper's is 22.05 kHz).")
    speed: float = Field(1.0, ge=MIN_SPEED, le=MAX_SPEED, description=_SPEED)
    instructions: str | None = Field(None, description="Accepted and ignored: our voices take no style prompt.")
    stream_format: Literal["audio", "sse"] = Field("audio", description="Only `audio` (chunked audio bytes).")


class ModelOut(BaseModel):
    """A model as OpenAI's `models.list()` gives it (`id`, `object`, `created`, `owned_by`), with what it is here."""

    id: str
    object: Literal["model"] = "model"
    created: int = Field(description="Unix seconds; here, when this server started.")
    owned_by: str = "mediaflow"
    kind: str = Field(description="What the model does: `speech` (`/v1/audio/speech`).")
    voices: list[str] = Field(description="Our voice ids that speak with it (OpenAI's names: the default voice).")
    description: str


class ModelList(BaseModel):
    """`GET /v1/models`, in OpenAI's list shape."""

    object: Literal["list"] = "list"
    data: list[ModelOut]


class VoiceOut(BaseModel):
    """A voice as listed: what it is, what it costs, whether it is installed here."""

    id: str
    description: str
    engine: str
    sample_rate: int
    parameters: int | None = Field(description="Parameters in the model's weights (the student's: the shipped "
                                               "checkpoint's; null for another).")
    size_bytes: int | None = Field(description="The model's files on disk, in bytes.")
    license: str
    rtf: float | None = Field(description="Median wall seconds per second of audio, 2 threads. " + _REFERENCE)
    cpu_rtf: float | None = Field(description="Median CPU seconds per second of audio. " + _REFERENCE)
    first_audio_s: float | None = Field(description="Wall time to the first audio of a 20-word sentence. " + _REFERENCE)
    speed_measured: str | None = Field(description="Where, when and under what load the speed figures were measured.")
    available: bool
    install: str = Field(description="What to do when it is not available.")
    default: bool = Field(description="Used when a request names no voice.")
    openai_names: list[str] = Field(description="OpenAI voice names that speak with this voice.")


class SimilarPairOut(Suggestion):
    """`GET /episodes/{id}/similar/{other}`: the pair as `/similar` lists it, and where its narration is."""

    narration: str = Field(description="The URL of `explanation` spoken (MP3; `voice` and `speed` may be added).")


class VoiceList(BaseModel):
    voices: list[VoiceOut]
    default: str = Field(description="The voice id used when a request names none.")
    openai_voices: dict[str, str] = Field(description="OpenAI voice name → our voice id.")
