"""The `mediaflow` command: a shell over the library (`mediaflow/`), the flows and the service.

Commands that run flows get a Prefect API of their own (`cli.prefect_api`) that ends with the
command however it ends; flows and the app are imported lazily, so `--help` stays quick.
Bad input exits 2 with one line saying why; Ctrl-C exits 130 at once, leaving an interrupted
episode to be resumed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

from mediaflow.errors import MediaflowError
from mediaflow.transcript import FORMATS


def _progress_bar(total_s: float):
    from tqdm import tqdm

    bar = tqdm(total=round(total_s, 1), unit="s", desc="transcribing", file=sys.stderr, disable=None,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}]")

    def update(done_s: float) -> None:
        bar.update(max(0.0, min(done_s, total_s) - bar.n))

    return bar, update


def cmd_transcribe(args, settings) -> int:
    from mediaflow.audio import probe
    from mediaflow.resources import get_transcriber
    from mediaflow.transcript import export
    from mediaflow.vad import SpeechTrack

    if args.model:
        settings.asr_model = args.model
    info = probe(args.file, max_bytes=settings.max_upload_bytes, max_duration_s=settings.max_duration_h * 3600)
    bar, update = _progress_bar(info.duration_s)
    diarizing = args.speakers or args.format == "rttm"
    track = SpeechTrack() if diarizing else None  # the VAD's probabilities, read again by the speaker step
    with bar:
        transcript = get_transcriber(settings).transcribe(
            args.file, progress=update, max_duration_s=settings.max_duration_h * 3600, fine_progress=True,
            speech=track,
        )
    if diarizing:
        from mediaflow import speakers
        from mediaflow.diarize import diarize

        found = speakers.Speakers(diarize(args.file, max_duration_s=settings.max_duration_h * 3600,
                                          speech=track.array()))
        found.names.update(speakers.from_introductions(speakers.attribute(transcript, found, names=False),
                                                       speakers.known_names(transcript, None)))
        if args.format == "rttm":
            sys.stdout.write(speakers.to_rttm(found, Path(args.file).stem))
            return 0
        transcript = speakers.attribute(transcript, found)
    sys.stdout.write(export(transcript, args.format))
    if not args.format == "text":
        sys.stdout.write("\n")
    return 0


def _load_transcript_input(path: str, settings):
    """An audio file, a transcript JSON of ours, or a Podcasting 2.0 JSON transcript."""
    import json as _json

    from mediaflow.errors import InvalidInput
    from mediaflow.transcript import Transcript

    p = Path(path)
    if p.suffix.lower() == ".json":
        try:
            doc = _json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"{p.name}: not readable JSON ({exc})") from exc
        segs = doc.get("segments") if isinstance(doc, dict) else None
        if not isinstance(segs, list):
            raise InvalidInput(f"{p.name}: expected a transcript JSON with a `segments` list")
        if segs and isinstance(segs[0], dict) and "startTime" in segs[0]:
            return Transcript.from_podcast_json(doc)
        try:
            return Transcript.from_dict(doc)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"{p.name}: not a mediaflow transcript JSON ({exc})") from exc
    from mediaflow.audio import probe
    from mediaflow.resources import get_transcriber

    info = probe(p, max_bytes=settings.max_upload_bytes, max_duration_s=settings.max_duration_h * 3600)
    bar, update = _progress_bar(info.duration_s)
    with bar:
        return get_transcriber(settings).transcribe(p, progress=update, fine_progress=True)


def cmd_chapters(args, settings) -> int:
    from mediaflow.chapters import ChapterOptions, chapterize, summarize_episode, title_method
    from mediaflow.chapters.formats import export as export_chapters

    transcript = _load_transcript_input(args.input, settings)
    opts = ChapterOptions(title_method=args.titles or settings.chapter_titles)
    chapters = chapterize(transcript, title=args.title, description=args.description, options=opts)
    summary, queries = None, None
    if args.format == "json" and title_method(opts) == "model":
        from mediaflow.queries import episode_queries

        summary = summarize_episode(chapters, args.title, args.description, opts)
        queries = episode_queries(args.title, args.description, chapters)
    out = export_chapters(chapters, args.format, title=args.title, summary=summary, queries=queries)
    sys.stdout.write(out if out.endswith("\n") else out + "\n")
    return 0


def _summary(settings, episode_id: str) -> dict:
    from mediaflow.resources import get_store

    store = get_store(settings.db_url)
    ep = store.get_episode(episode_id)
    out = {k: v for k, v in ep.to_dict().items() if k not in ("created_at", "updated_at", "lease_owner", "lease_until")}
    if ep.status == "done":
        t = store.get_transcript(episode_id)
        out["transcript"] = {"segments": len(t.segments), "words": len(t.words), "language": t.language,
                             "model": t.model, "preview": t.text[:300]}
        try:
            chapters, _ = store.get_chapters(episode_id)
            out["chapters"] = [f"{c['start']:7.1f}s  {c['title']}" for c in chapters]
        except MediaflowError:
            out["chapters"] = []
    return out


@contextmanager
def prefect_api(ui: bool = False, port: int | None = None):
    """A Prefect API for this command's flows, ended with the command (see cli/prefect_api.py)."""
    import flows  # noqa: F401  (Prefect's embedded defaults, set before the server starts)
    from cli.prefect_api import PrefectAPI

    if "prefect" in sys.modules and not ui:  # called inside a process already using Prefect (a test): keep its API
        yield None
        return
    with PrefectAPI(port=port, ui=ui) as api:
        api.wait_ready()
        yield api


def cmd_process(args, settings) -> int:
    with prefect_api():
        from flows.episodes import process_episode

        episode_id = process_episode(str(Path(args.file).resolve()), title=args.title, force=args.force)
    print(json.dumps(_summary(settings, episode_id), indent=2, default=str))
    return 0


def cmd_demo(args, settings) -> int:
    """Two sample episodes end to end: transcripts, chapters, features, a recommendation, spoken."""
    with prefect_api():
        return _demo(settings)


def _demo(settings) -> int:
    from flows.catalogue import refresh_semantic_ids
    from flows.episodes import process_episode
    from mediaflow.catalogue import similar_episodes
    from mediaflow.chapters.formats import export as export_chapters
    from mediaflow.resources import get_store
    from mediaflow.sample import sample_episode
    from mediaflow.speakers import transcript_with_speakers
    from mediaflow.transcript import export

    print(f"data dir: {settings.data_path}", file=sys.stderr)
    print("sample episodes: synthesising with the Piper voice (first run only) ...", file=sys.stderr)
    ids = [process_episode(str(sample_episode(settings.data_path / "samples", n))) for n in (1, 2)]
    store = get_store(settings.db_url)
    exports = settings.data_path / "exports"
    exports.mkdir(parents=True, exist_ok=True)
    written = []
    for eid in ids:
        transcript = transcript_with_speakers(eid, settings)
        for fmt, ext in (("json", "json"), ("vtt", "vtt"), ("srt", "srt"), ("podcast", "transcript.json")):
            path = exports / f"{eid}.{ext}"
            path.write_text(export(transcript, fmt), encoding="utf-8")
            written.append(str(path))
        chapters, _ = store.get_chapters(eid)
        from mediaflow.chapters import Chapter

        path = exports / f"{eid}.chapters.json"
        path.write_text(export_chapters([Chapter(**c) for c in chapters], "podcast", store.get_episode(eid).title))
        written.append(str(path))
    ids_result = refresh_semantic_ids()
    summary = _summary(settings, ids[0])
    summary["exports"] = written
    summary["semantic_ids"] = {e.id: f.semantic_id for e, f in store.all_features()}
    print(json.dumps(summary, indent=2, default=str))
    print(f"\nsemantic-ID codebook {ids_result['codebook_version']} over {ids_result['episodes']} episodes")
    print("\nfirst cues:")
    for s in store.get_transcript(ids[0]).segments[:4]:
        print(f"  [{s.start:7.2f} – {s.end:7.2f}] {s.text}")
    suggestion = similar_episodes(ids[0], settings, k=1)
    if suggestion:
        from mediaflow.narration import narrate

        n = narrate(ids[0], suggestion[0].recommendation.episode_id, settings)
        target = exports / "why-this.mp3"
        target.write_bytes(n.path.read_bytes())
        print(f"\nrecommendation: {n.text}\n  spoken by the `{n.voice}` voice ({n.duration_s:.1f} s): {target}")
    return 0


def cmd_batch(args, settings) -> int:
    """Process several files as one `process-batch` flow run (side by side on the configured task
    runner), with a progress bar over the batch and one line per file that fails."""
    from tqdm import tqdm

    os.environ["PREFECT_LOGGING_LEVEL"] = "CRITICAL"  # failures get our one line, not a traceback or log
    sources = {str(Path(f).resolve()): f for f in args.files}
    failed = 0
    with prefect_api(), tqdm(total=len(sources), unit="episode", desc="processing", file=sys.stderr,
                             disable=None) as bar:
        from flows.episodes import process_batch, watch

        def finished(source: str, episode_id: str | None, error: str | None) -> None:
            nonlocal failed
            name = sources.get(source, source)
            if error is None:
                bar.write(f"{episode_id}  {name}", file=sys.stdout)
            else:
                failed += 1
                said = error if error.startswith(Path(name).name) else f"{name}: {error}"
                bar.write(f"mediaflow: {said}", file=sys.stderr)
            bar.update(1)

        with watch(finished):
            process_batch(list(sources))
    return 2 if failed else 0


def cmd_feeds(args, settings) -> int:
    from mediaflow.resources import get_store

    store = get_store(settings.db_url)
    if args.action == "add":
        from mediaflow import feeds

        if not args.url:
            raise MediaflowError("feeds add needs the feed's http(s) URL or a local feed file")
        row = feeds.add(args.url, settings)
        print(f"feed {row.id}: {row.title}  {row.url}")
        return 0
    if args.action == "import":
        from mediaflow import opml

        if not args.url:
            raise MediaflowError("feeds import needs an OPML file")
        results = opml.import_file(args.url, settings)
        for r in results:
            print(f"feed {r.feed_id}: {r.title}  {r.url}" if r.error is None else f"refused: {r.url}: {r.error}")
        failed = sum(r.error is not None for r in results)
        print(f"{len(results) - failed} of {len(results)} feeds added")
        return 2 if failed else 0
    if args.action == "poll":
        with prefect_api():
            from flows.feeds import poll_feeds

            print(json.dumps(poll_feeds(), indent=2))
        return 0
    for f in store.list_feeds():
        print(f"{f.id:4d}  {f.title or '(not polled yet)'}  {f.url}  last polled: {f.last_polled_at or 'never'}")
    return 0


def cmd_serve_flows(args, settings) -> int:
    """Serve every scheduled deployment; start a local Prefect server (with its UI) unless one is configured."""
    configured = bool(os.environ.get("PREFECT_API_URL"))
    with prefect_api(ui=True, port=args.prefect_port):
        from flows.deploy import serve_all

        if not configured:
            print(f"Prefect UI: http://127.0.0.1:{args.prefect_port}", file=sys.stderr)
        serve_all(args.timezone)
    return 0


def cmd_refresh(args, settings) -> int:
    """Redo, on every stored episode, the steps whose method changed (speakers for episodes processed
    before diarization existed, a new chapter or feature method)."""
    os.environ["PREFECT_LOGGING_LEVEL"] = "CRITICAL"
    with prefect_api():
        from flows.episodes import refresh_episodes

        out = refresh_episodes(args.episodes or None)
    for episode_id in out["done"]:
        print(f"{episode_id}  up to date")
    for episode_id, error in out["failed"].items():
        print(f"mediaflow: {episode_id}: {error}", file=sys.stderr)
    if out["busy"]:
        print(f"{out['busy']} episode(s) being processed elsewhere were left to that run", file=sys.stderr)
    return 2 if out["failed"] else 0


def cmd_refresh_ids(args, settings) -> int:
    with prefect_api():
        from flows.catalogue import refresh_semantic_ids

        print(json.dumps(refresh_semantic_ids(levels=args.levels), indent=2))
    return 0


def cmd_narrate(args, settings) -> int:
    # the flow reads the process's settings: these flags become them for this run
    if args.explanations:
        os.environ["MEDIAFLOW_EXPLANATIONS"] = args.explanations
    os.environ["MEDIAFLOW_EXPLANATION_WAIT_S"] = str(args.wait)
    from mediaflow.config import get_settings

    get_settings.cache_clear()
    with prefect_api():
        from flows.narration import narrate_recommendations

        print(json.dumps(narrate_recommendations(per_episode=args.per_episode, max_pairs=args.max_pairs,
                                                 voice=args.voice), indent=2))
    return 0


def cmd_serve(args, settings) -> int:
    import uvicorn

    import flows  # noqa: F401  (Prefect's embedded defaults, set before the server starts)
    from cli.prefect_api import PrefectAPI

    # The API starts beside the service (the first flow run waits for it), so the port opens at once.
    with PrefectAPI():
        uvicorn.run("service.app:create_app", factory=True, host=args.host or settings.host,
                    port=args.port or settings.port, workers=1, timeout_graceful_shutdown=5)
    return 0


def cmd_episodes(args, settings) -> int:
    from mediaflow.resources import get_store

    rows, total = get_store(settings.db_url).list_episodes(limit=args.limit)
    for ep in rows:
        print(f"{ep.id}  {ep.status:10s} {ep.duration_s:8.1f}s  {ep.title}")
    print(f"{total} episode(s)", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mediaflow", description="Podcast transcripts, chapters and speech.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("transcribe", help="transcribe an audio file to stdout")
    t.add_argument("file")
    t.add_argument("--format", choices=(*FORMATS, "rttm"), default="json",
                   help="rttm: the speaker turns (NIST RTTM) instead of the words")
    t.add_argument("--speakers", action=argparse.BooleanOptionalAction, default=True,
                   help="find who speaks when and mark each segment with its speaker (default: on)")
    t.add_argument("--model", help="`tiny.en` (bundled) or a local CTranslate2 Whisper directory")
    t.set_defaults(func=cmd_transcribe)

    pr = sub.add_parser("process", help="run the process-episode flow on a file and store the result")
    pr.add_argument("file")
    pr.add_argument("--title")
    pr.add_argument("--force", action="store_true", help="transcribe again even if already done")
    pr.set_defaults(func=cmd_process)

    c = sub.add_parser("chapters", help="chapters for an audio file or a transcript JSON, to stdout")
    c.add_argument("input", help="audio file, mediaflow transcript JSON, or Podcasting 2.0 JSON transcript")
    c.add_argument("--format", choices=("json", "podcast", "vtt", "youtube"), default="json")
    c.add_argument("--title", help="the episode title (steers the segmentation, as PODTILE does)")
    c.add_argument("--description", help="the episode description")
    c.add_argument("--titles", choices=("auto", "model", "extractive"),
                   help="who writes the titles: the language model (with summaries) or keyphrases; "
                        "default: the `chapter_titles` setting (auto: the model when installed)")
    c.set_defaults(func=cmd_chapters)

    d = sub.add_parser("demo", help="make the sample episode and process it end to end")
    d.set_defaults(func=cmd_demo)

    s = sub.add_parser(
        "serve", help="start the API and the web player",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Serve the API (OpenAPI docs at /docs) and the web player (/) with uvicorn; uploads are "
                    "processed in the background, and episodes a killed server left unfinished are resumed.",
        epilog="environment (or .env), all optional:\n"
               "  MEDIAFLOW_DATA_DIR       audio, SQLite database, exports (default ./data)\n"
               "  MEDIAFLOW_DATABASE_URL   any SQLAlchemy URL (default: SQLite in the data dir)\n"
               "  MEDIAFLOW_API_KEY        writes (and synthesis) need `Authorization: Bearer <key>`\n"
               "  MEDIAFLOW_READ_REQUIRES_KEY=true   reads need the key too\n"
               "  MEDIAFLOW_HOST, MEDIAFLOW_PORT     defaults for --host and --port\n"
               "  MEDIAFLOW_MAX_UPLOAD_MB, MEDIAFLOW_MAX_DURATION_H   input limits (413 past them)\n"
               "  PREFECT_API_URL          an existing Prefect server (default: one started beside the service)\n"
               "every setting: mediaflow/config.py",
    )
    s.add_argument("--host", help="interface to listen on (default MEDIAFLOW_HOST, else 127.0.0.1)")
    s.add_argument("--port", type=int, help="port (default MEDIAFLOW_PORT, else 8000)")
    s.set_defaults(func=cmd_serve)

    b = sub.add_parser("batch", help="process several files as one batch flow run, with a progress bar")
    b.add_argument("files", nargs="+")
    b.set_defaults(func=cmd_batch)

    fd = sub.add_parser("feeds", help="podcast feeds: add a URL or file, import OPML, list, or poll now")
    fd.add_argument("action", choices=("add", "import", "list", "poll"))
    fd.add_argument("url", nargs="?", help="with `add`: the feed's http(s) URL or a local feed file; "
                                           "with `import`: an OPML file")
    fd.set_defaults(func=cmd_feeds)

    sf = sub.add_parser("serve-flows", help="serve the scheduled deployments (feeds, folder, semantic IDs, narration)")
    sf.add_argument("--prefect-port", type=int, default=4200, help="port of the local Prefect server (and its UI)")
    sf.add_argument("--timezone", help="IANA zone for the cron schedules (default: UTC)")
    sf.set_defaults(func=cmd_serve_flows)

    rf = sub.add_parser("refresh", help="bring stored episodes up to date with the current methods (e.g. add speakers)")
    rf.add_argument("episodes", nargs="*", help="episode ids (default: every finished episode)")
    rf.set_defaults(func=cmd_refresh)

    ri = sub.add_parser("refresh-ids", help="refit the semantic-ID codebook and reassign every episode's ID")
    ri.add_argument("--levels", type=int, default=3)
    ri.set_defaults(func=cmd_refresh_ids)

    na = sub.add_parser("narrate", help="speak the why-this explanations of each episode's neighbours now")
    na.add_argument("--per-episode", type=int, default=3)
    na.add_argument("--max-pairs", type=int, default=500)
    na.add_argument("--voice")
    na.add_argument("--explanations", choices=["auto", "model", "template"],
                    help="who writes the sentences spoken; default: the `explanations` setting")
    na.add_argument("--wait", type=float, default=300.0,
                    help="seconds to wait for each list's model-written sentences before the template speaks "
                         "(default 300: made ahead, nobody is waiting)")
    na.set_defaults(func=cmd_narrate)

    e = sub.add_parser("episodes", help="list stored episodes")
    e.add_argument("--limit", type=int, default=50)
    e.set_defaults(func=cmd_episodes)
    return p


def _exit_on_sigterm(signum, frame):
    raise KeyboardInterrupt  # run the same clean-up as Ctrl-C


def main(argv: list[str] | None = None) -> int:
    """Run one command in this thread; returns its exit code (2: bad input, 130: interrupted)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    from mediaflow.config import Settings

    try:
        return args.func(args, Settings())
    except MediaflowError as exc:
        print(f"mediaflow: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def entry() -> None:
    """The console script. `serve` runs in the main thread (uvicorn handles its signals there); every
    other command runs on a worker thread while the main thread only waits, so Ctrl-C or SIGTERM is
    acted on at once even while Whisper holds the worker in native code. Either way the process then
    leaves at once: a flow may still be running, and Prefect's exit hooks would wait on an API that has
    just stopped. Whatever was interrupted keeps its state (its lease lapses), so it is resumed later."""
    import threading

    argv = sys.argv[1:]
    args = build_parser().parse_args(argv)  # --help and usage errors exit here, as usual
    if args.func is cmd_serve:
        code = main(argv)
    else:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        done: dict[str, int] = {}
        worker = threading.Thread(target=lambda: done.update(code=main(argv)), name="mediaflow-command", daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                worker.join(0.2)
            code = done.get("code", 1)  # no code: it died of an unexpected error, printed above
        except KeyboardInterrupt:
            print("mediaflow: interrupted", file=sys.stderr)
            code = 130
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
