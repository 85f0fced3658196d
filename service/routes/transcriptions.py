"""OpenAI's speech to text: `POST /v1/audio/transcriptions` and `POST /v1/audio/translations` (point the `openai` client's `base_url` at
`<server>/v1`). Stateless: the upload waits in a folder of its own under incoming/ and is removed after;
nothing is stored. The audio is refused as `POST /episodes` refuses it; the work is `mediaflow.stt`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import anyio
from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask

from mediaflow import stt
from mediaflow.config import Settings
from service.deps import require_api_key, settings
from service.routes.episodes import _save_upload

router = APIRouter(tags=["speech"])

_RESPONSES = {
    200: {"content": {"application/json": {}, "text/plain": {}, "text/vtt": {}, "application/x-subrip": {},
                      "text/event-stream": {}},
          "description": "The transcript in `response_format`; with `stream=true`, server-sent events "
                         "(`transcript.text.delta` per segment, then `transcript.text.done`)."},
    413: {"description": "The upload is over `max_upload_mb`, or its audio over `max_duration_h`."},
    415: {"description": "Not a recognised audio or video file, or no audio track."},
    422: {"description": "Empty or undecodable audio, or a field out of range."},
}


_MODEL_FIELD = ("`whisper-1` (the configured Whisper) or one of ours (GET /v1/models): `tiny.en`, `base` "
                "(multilingual) when installed.")


@router.post("/v1/audio/transcriptions", response_class=Response, responses=_RESPONSES,
             dependencies=[Depends(require_api_key)])
async def create_transcription(
    file: UploadFile = File(description="The audio (any format ffmpeg reads)."),
    model: str = Form(description=_MODEL_FIELD),
    language: str | None = Form(None, description="ISO-639-1 code, e.g. `en`; default: detected."),
    prompt: str | None = Form(None, description="Text to follow in spelling and style."),
    response_format: str = Form("json", description="json, text, srt, vtt or verbose_json."),
    temperature: float | None = Form(None, ge=0, le=1, description="Accepted for compatibility; decoding is greedy "
                                                                  "beam search here."),
    timestamp_granularities: list[str] | None = Form(None, alias="timestamp_granularities[]",
                                                     description="word and/or segment (verbose_json)."),
    stream: bool = Form(False, description="Server-sent events instead of one body."),
    s: Settings = Depends(settings),
):
    """OpenAI's `audio.transcriptions.create`. Nothing is stored."""
    grans = timestamp_granularities or []
    stt.check_request(s, model, response_format, grans, language or None, prompt)
    source = await _save_upload(file, s)
    folder = source.parent
    try:
        transcriber = await anyio.to_thread.run_sync(stt.prepare, source, s, language or None, prompt, model)
        if stream:
            # the folder goes when the last event has been made (before the response ends), or, if the
            # client leaves first, after the response
            return StreamingResponse(_removing(stt.events(source, s, transcriber), folder),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"},
                                     background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True))
        t = await anyio.to_thread.run_sync(lambda: transcriber.transcribe(source,
                                                                          max_duration_s=s.max_duration_h * 3600))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    shutil.rmtree(folder, ignore_errors=True)
    body, media_type = stt.render(t, response_format, grans)
    return Response(body, media_type=media_type)


@router.post("/v1/audio/translations", response_class=Response,
             responses={**_RESPONSES, 200: {"content": {k: {} for k in ("application/json", "text/plain", "text/vtt",
                                                                           "application/x-subrip")},
                                            "description": "English text of the speech, in `response_format`."},
                        400: {"description": "The Whisper asked for is English only (ask for `base`, or set "
                                              "`ASR_MODEL=base`)."}},
             dependencies=[Depends(require_api_key)])
async def create_translation(
    file: UploadFile = File(description="The audio, speech in any language Whisper knows."),
    model: str = Form(description=_MODEL_FIELD),
    prompt: str | None = Form(None, description="English text to follow in spelling and style."),
    response_format: str = Form("json", description="json, text, srt, vtt or verbose_json."),
    temperature: float | None = Form(None, ge=0, le=1, description="Accepted for compatibility."),
    s: Settings = Depends(settings),
):
    """OpenAI's `audio.translations.create`: English text from speech in another language, with a
    multilingual model. `verbose_json` names the language spoken. Nothing is stored."""
    stt.check_request(s, model, response_format, [], None, prompt)
    source = await _save_upload(file, s)
    try:
        translator = await anyio.to_thread.run_sync(stt.prepare_translation, source, s, prompt, model)
        t = await anyio.to_thread.run_sync(lambda: translator.transcribe(source,
                                                                         max_duration_s=s.max_duration_h * 3600))
    finally:
        shutil.rmtree(source.parent, ignore_errors=True)
    body, media_type = stt.render(t, response_format)
    return Response(body, media_type=media_type)


def _removing(events: Iterator[str], folder: Path) -> Iterator[str]:
    try:
        yield from events
    finally:
        shutil.rmtree(folder, ignore_errors=True)
