"""Episodes: upload or register audio, list, read, and fetch transcripts."""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse

from mediaflow import files, pipeline
from mediaflow.config import Settings
from mediaflow.errors import Busy, InputTooLarge, InvalidInput, NotFound
from mediaflow.store import Store
from mediaflow.transcript import MEDIA_TYPES, export
from mediaflow.tts.voices import MAX_SPEED, MIN_SPEED
from service.deps import require_api_key, settings, store
from service.schemas import EpisodeList, EpisodeOut, FeaturesOut, SuggestionList
from service.tts_schemas import SimilarPairOut

router = APIRouter(prefix="/episodes", tags=["episodes"])

_CHUNK = 1 << 20


async def _save_upload(upload: UploadFile, s: Settings) -> Path:
    """Stream the upload into a folder of its own under incoming/, refusing it past the size cap.

    The file keeps the user's name (made safe), so error messages and `source_name` show that name
    rather than a temporary one.
    """
    incoming = s.data_path / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=incoming))
    name = re.sub(r"[^\w.\- ]", "_", Path(upload.filename or "").name)[:200].lstrip(".") or "upload"
    target = folder / name
    size = 0
    try:
        with open(target, "wb") as f:
            while chunk := await upload.read(_CHUNK):
                size += len(chunk)
                if size > s.max_upload_bytes:
                    raise InputTooLarge(f"upload is over the {s.max_upload_mb} MiB limit")
                f.write(chunk)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return target


@router.post(
    "",
    response_model=EpisodeOut,
    status_code=202,
    dependencies=[Depends(require_api_key)],
    responses={200: {"model": EpisodeOut, "description": "already processed"}},
)
async def create_episode(
    request: Request,
    response: Response,
    file: UploadFile | None = File(None, description="The episode's audio (any format ffmpeg reads)."),
    path: str | None = Form(None, description="Or: a file inside the data dir, relative to it."),
    title: str | None = Form(None, max_length=500),
    description: str | None = Form(None, max_length=5000),
    show: str | None = Form(None, max_length=500, description="The show or feed (recommendations cap episodes per show)."),
    s: Settings = Depends(settings),
):
    """Add an episode. The audio is checked now; transcription runs as a Prefect flow run."""
    limit = request.headers.get("content-length")
    if limit and limit.isdigit() and int(limit) > s.max_upload_bytes + _CHUNK:
        raise InputTooLarge(f"upload is over the {s.max_upload_mb} MiB limit")
    path = path or None  # `-F path=` sends an empty field: that is no path
    if file is None and path is None:
        raise InvalidInput("send an audio `file` (multipart) or a `path` inside the data dir")
    if file is not None and path is not None:
        raise InvalidInput("send either an audio `file` or a `path` inside the data dir, not both")
    if file is not None:
        source = await _save_upload(file, s)
        try:
            episode = pipeline.ingest(source, s, title=title or _upload_title(file.filename),
                                      description=description, show=show)
        finally:
            shutil.rmtree(source.parent, ignore_errors=True)
    else:
        source = files.resolve_in_data_dir(s, path)
        if not source.is_file():
            raise InvalidInput(f"no file at {path!r} in the data dir")
        episode = pipeline.ingest(source, s, title=title, description=description, show=show)
    if episode.status == "done":
        response.status_code = 200
        return episode
    request.app.state.jobs.submit_episode(episode.id)  # the flow starts from the id: nothing is read twice
    response.headers["Location"] = f"/episodes/{episode.id}"
    return episode


def cached(request: Request, body: str, media_type: str) -> Response:
    """A body with a strong ETag; `If-None-Match` with the same tag gets 304 and no body."""
    tag = '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"'
    headers = {"ETag": tag, "Cache-Control": "no-cache"}  # cache, but revalidate: chapters can be redone
    match = request.headers.get("if-none-match", "")
    if tag in {t.strip() for t in match.split(",")} or match.strip() == "*":
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=media_type, headers=headers)


def _upload_title(filename: str | None) -> str | None:
    if not filename:
        return None
    stem = Path(filename).stem.replace("_", " ").replace("-", " ").strip()
    return stem or None


@router.get("", response_model=EpisodeList)
def list_episodes(
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=1_000_000_000),  # past 2**63 SQLite overflows: a 500
    status: Literal["pending", "processing", "done", "failed"] | None = None,
    q: str | None = Query(None, min_length=1, max_length=200, description="Search titles, shows, descriptions, keywords, "
                          "chapter titles and summaries, episode summaries and synthetic search queries; best first."),
    db: Store = Depends(store),
):
    """Episodes, newest first, a page at a time; `q` searches, best match first (and then `status` is ignored)."""
    rows, total = db.search_episodes(q, limit, offset) if q else db.list_episodes(limit=limit, offset=offset, status=status)
    return EpisodeList(items=rows, total=total, limit=limit, offset=offset)


@router.get("/{episode_id}", response_model=EpisodeOut)
def get_episode(episode_id: str, db: Store = Depends(store)):
    return db.get_episode(episode_id)


@router.get(
    "/{episode_id}/transcript",
    responses={200: {"content": {m: {} for m in set(MEDIA_TYPES.values())}}},
)
def get_transcript(
    request: Request,
    episode_id: str,
    format: Literal["json", "vtt", "srt", "podcast", "text", "rttm"] = "json",
    s: Settings = Depends(settings),
):
    """The transcript as JSON (ours), WebVTT, SRT, Podcasting 2.0 JSON or plain text, each segment with
    its speaker once the episode is diarized (`<v Name>` in WebVTT, `Name: ` in SRT); or the speaker
    turns as NIST RTTM."""
    from mediaflow import speakers

    if format == "rttm":
        found = speakers.load(episode_id, s)
        if found is None:
            raise NotFound(f"episode {episode_id!r} has no speakers yet")
        return cached(request, speakers.to_rttm(found, episode_id), "text/plain; charset=utf-8")
    body = export(speakers.transcript_with_speakers(episode_id, s), format)
    media = "application/json" if format in ("json", "podcast") else f"{MEDIA_TYPES[format]}; charset=utf-8"
    return cached(request, body, media)


@router.get(
    "/{episode_id}/chapters",
    responses={200: {"content": {"application/json": {}, "application/json+chapters": {}, "text/vtt": {},
                                 "text/plain": {}}}},
)
def get_chapters(
    request: Request,
    episode_id: str,
    format: Literal["json", "podcast", "vtt", "youtube"] = "json",
    db: Store = Depends(store),
):
    """Chapters as JSON (ours), Podcasting 2.0 JSON chapters, WebVTT chapters or a YouTube description.

    When the creator wrote chapters (in the description, or the feed's `podcast:chapters`) they are the
    episode's chapters in every format; the JSON says `"source": "creator"` and gives ours as `generated`
    (else `"source": "generated"`). When the language model wrote the titles, the JSON also has the episode's
    `summary` and `queries` (synthetic search queries a listener might type; `GET /episodes?q=` matches them)."""
    import json

    from mediaflow.chapters import Chapter
    from mediaflow.chapters.formats import MEDIA_TYPES as CH_TYPES
    from mediaflow.chapters.formats import export as export_chapters

    data, _ = db.get_chapters(episode_id)
    title = db.get_episode(episode_id).title if format == "podcast" else None  # only that format names it
    row = db.chapters_row(episode_id) if format == "json" else None
    body = export_chapters([Chapter(**c) for c in data], format, title=title, summary=row and row.summary,
                           queries=row and row.queries)
    if format == "json":
        ours = row.generated if row is not None else None
        body = json.dumps({**json.loads(body), "source": "generated" if ours is None else "creator",
                           **({"generated": ours} if ours is not None else {})}, ensure_ascii=False)
    media = CH_TYPES[format]
    return cached(request, body, media if "json" in media else f"{media}; charset=utf-8")


@router.get("/{episode_id}/chapters.mp3", response_class=FileResponse,
            responses={200: {"content": {"audio/mpeg": {}}}})
def get_chapters_mp3(episode_id: str, s: Settings = Depends(settings)):
    """The episode as MP3 with ID3v2 CHAP and CTOC frames, for players that read embedded chapters."""
    path = files.chapters_mp3(episode_id, s)
    return FileResponse(path, media_type="audio/mpeg", filename=f"{episode_id}-chapters.mp3")


@router.get("/{episode_id}/features", response_model=FeaturesOut, response_model_exclude_unset=True)
def get_features(episode_id: str, vectors: bool = Query(False, description="Include the embeddings (base64 float32)."),
                 db: Store = Depends(store)):
    """Content features: embeddings' model, keywords, entities, chapters, speech and audio descriptors, semantic ID.

    Two shares measure different things: `transcribed_fraction` is the share of the whole duration covered
    by transcribed words; `audio.speech_share_of_sound` is, of the audio that is not silent, the share that
    sounds like speech (the rest is `audio.music_fraction`). Both were once `speech_fraction`.
    """
    from mediaflow.features import EpisodeFeatures

    row = db.get_features(episode_id)
    body = EpisodeFeatures.from_dict(row.data).to_dict(vectors=vectors)
    body["semantic_id"], body["codebook_version"] = row.semantic_id, row.codebook_version
    chapters = db.chapters_row(episode_id)  # the model's words for the episode are kept with its chapters
    if chapters is not None and chapters.summary:
        body["summary"] = chapters.summary
    if chapters is not None and chapters.queries:
        body["queries"] = chapters.queries
    return body


@router.get("/{episode_id}/similar", response_model=SuggestionList)
def get_similar(episode_id: str, k: int = Query(10, ge=1, le=100), s: Settings = Depends(settings)):
    """The episodes closest in content, each with the shared topics that make it so and a sentence saying why.

    Only episodes with speech and at least 0.30 alike (cosine of episode vectors), never the episode itself,
    and one of each set of copies (re-encodes of one audio: the oldest stays), so fewer than `k` may come;
    an episode without speech (under 10 transcribed words) has none.
    """
    from mediaflow.catalogue import similar_episodes

    return SuggestionList(items=[x.to_dict() for x in similar_episodes(episode_id, s, k)])


AUDIO_TYPES = {"mp3": "audio/mpeg", "aac": "audio/aac", "opus": "audio/ogg", "vorbis": "audio/ogg",
               "flac": "audio/flac", "pcm_s16le": "audio/wav", "pcm_s24le": "audio/wav", "pcm_f32le": "audio/wav"}


@router.get("/{episode_id}/audio", response_class=FileResponse, responses={200: {"content": {
    t: {} for t in sorted({*AUDIO_TYPES.values(), "video/mp4", "application/octet-stream"})}}})
def get_audio(episode_id: str, db: Store = Depends(store), s: Settings = Depends(settings)):
    """The episode's audio as it was uploaded (byte ranges supported, for seeking in a player; HEAD
    answers the headers alone, as players ask before they fetch)."""
    ep = db.get_episode(episode_id)
    path = s.data_path / ep.audio_path
    if not path.is_file():
        raise NotFound(f"the audio of episode {episode_id!r} is missing from the data dir")
    media = AUDIO_TYPES.get(ep.codec) or ("video/mp4" if "mp4" in ep.container else "application/octet-stream")
    return FileResponse(path, media_type=media)


# Players ask with HEAD before they fetch; Starlette's FileResponse sends the headers alone.
router.add_api_route("/{episode_id}/audio", get_audio, methods=["HEAD"], include_in_schema=False)


@router.delete("/{episode_id}", status_code=204, dependencies=[Depends(require_api_key)])
def delete_episode(episode_id: str, s: Settings = Depends(settings)):
    """Remove the episode with its transcript, chapters, features and generated audio."""
    files.delete_episode(episode_id, s)
    return Response(status_code=204)


@router.post("/{episode_id}/reprocess", response_model=EpisodeOut, status_code=202,
             dependencies=[Depends(require_api_key)])
def reprocess_episode(episode_id: str, request: Request, response: Response, db: Store = Depends(store)):
    """Run the whole flow again on the stored audio (transcript, chapters, features), as a flow run."""
    jobs = request.app.state.jobs
    ep = db.get_episode(episode_id)
    if jobs.is_active(ep.id):
        jobs.submit_episode(ep.id, force=True)  # already queued here: it will now redo every step
    else:
        ep = db.update_episode(ep.id, status="pending", error=None)  # queued, visibly
        if not jobs.submit_episode(ep.id, force=True):
            raise Busy(f"episode {ep.id} is being processed by another server; reprocess it when that has finished")
    response.headers["Location"] = f"/episodes/{ep.id}"
    return ep


@router.get("/{episode_id}/similar/{other_id}", response_model=SimilarPairOut)
def get_similar_pair(episode_id: str, other_id: str, s: Settings = Depends(settings)):
    """Why `other_id` is similar to `episode_id`: its reason and sentence as `/similar` lists them (for any pair
    but the episode itself, a copy or one without speech), and `narration`, the URL of that sentence spoken."""
    from mediaflow.catalogue import similar_pair

    pair = similar_pair(episode_id, other_id, s)
    return SimilarPairOut(**pair.to_dict(), narration=f"/episodes/{episode_id}/similar/{other_id}/narration")


_NARRATION_HEADERS = {
    "X-Explanation": {"description": "The sentence spoken (the pair's `explanation`, as `/similar` and "
                                     "`GET /episodes/{id}/similar/{other}` give it), percent-encoded UTF-8: "
                                     "`decodeURIComponent` in JavaScript, `urllib.parse.unquote` in Python.",
                      "schema": {"type": "string"}},
    "X-Voice": {"description": "The voice id that spoke it.", "schema": {"type": "string"}},
    "X-Speed": {"description": "The speed it was spoken at (the asked one rounded to 0.25).",
                "schema": {"type": "number"}},
}


@router.get("/{episode_id}/similar/{other_id}/narration", response_class=FileResponse,
            openapi_extra={"security": [{}, {"apiKey": []}]},  # the key only to make one not made yet
            responses={200: {"content": {"audio/mpeg": {}}, "headers": _NARRATION_HEADERS,
                             "description": "The sentence spoken, MP3."},
                       401: {"description": "Not made yet, and making it needs the API key (when one is set)."},
                       429: {"description": "Synthesis is full; try again after `Retry-After` seconds."}})
async def get_narration(
    episode_id: str, other_id: str, request: Request,
    voice: str | None = Query(None, description="A voice id or OpenAI voice name, any case; default: the "
                                                "configured voice."),
    speed: float = Query(1.0, ge=MIN_SPEED, le=MAX_SPEED, description="Rounded to 0.25 (0.71 is 0.75)."),
    s: Settings = Depends(settings),
):
    """The spoken "why this?": the sentence `/similar` shows for `other_id` under `episode_id`, as MP3.

    Made once per (pair, voice, speed) and cached. With `MEDIAFLOW_API_KEY` set, a narration already
    made is served to anyone, while making one (synthesis) needs the key; making one takes a synthesis
    turn shared with `/tts` (429 and `Retry-After` when full). The sentence is in `X-Explanation`
    (percent-encoded UTF-8), or as JSON from `GET /episodes/{id}/similar/{other}`.
    """
    from urllib.parse import quote

    import anyio

    from mediaflow import narration
    from service.deps import check_key
    from service.routes.tts import synthesis_slots

    n = await anyio.to_thread.run_sync(narration.plan, episode_id, other_id, s, voice, speed)
    if not n.cached:
        check_key(request, s)
        n = await (await synthesis_slots(request, s)).run(narration.speak, n, s)
    return FileResponse(n.path, media_type="audio/mpeg",
                        headers={"X-Explanation": quote(n.text), "X-Voice": n.voice, "X-Speed": f"{n.speed:g}",
                                 "Cache-Control": "max-age=86400"})
