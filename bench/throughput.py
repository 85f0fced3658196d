"""Batch throughput: the whole pipeline over a batch of episodes, per task runner.

    .venv/bin/python bench/throughput.py [--episodes 8] [--minutes 5] [--configs library,default,dask:1,dask:2]

Configurations: `library` (the pipeline functions in a plain loop: no Prefect, the work alone),
`default` (process_batch on Prefect's thread pool) and `dask:N` (process_batch on a local Dask
cluster of N single-threaded worker processes, cores shared out between them). Each runs in a
fresh process on an empty data dir, so every model load is paid once per process, as in production.

Reports episodes/hour, audio-hours/hour, and the orchestration overhead per episode:
(flow wall time × parallel slots − Σ seconds inside library calls) / episodes, where slots is the
number of Dask workers (1 for the library loop, where it is 0 by construction). It counts Prefect's
task and state API calls, Dask scheduling and transfers, cluster start-up, worker imports, and
slots left idle at the end of the batch. Prefect's thread pool runs the stages of several episodes
at once in one process, so their seconds overlap and it has no such figure.
Episodes are Piper speech of the sample scripts (cached under bench/results/throughput/).
Writes bench/results/throughput.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
STAGES = ("ingest", "transcribe", "store", "chapterize", "featurize")


# -- inputs --------------------------------------------------------------------------------------
def episodes(n: int, minutes: float) -> list[tuple[Path, str]]:
    """`n` distinct episodes of about `minutes` each: the sample scripts' paragraphs, each episode
    starting at another paragraph (so the bytes, and the content hashes, differ). Cached."""
    folder = RESULTS / "throughput"
    wanted = [(folder / f"ep-{minutes:g}min-{i}.mp3", folder / f"ep-{minutes:g}min-{i}.txt") for i in range(n)]
    if all(a.exists() and t.exists() for a, t in wanted):
        return [(a, t.read_text()) for a, t in wanted]
    import numpy as np

    from mediaflow.audio import encode
    from mediaflow.sample import SCRIPT, SCRIPT_2
    from mediaflow.tts.piper import PiperSpeaker

    folder.mkdir(parents=True, exist_ok=True)
    sp = PiperSpeaker()
    pool = SCRIPT + SCRIPT_2
    spoken: dict[int, np.ndarray] = {}  # each paragraph is synthesised once and reused
    for i, (audio_path, text_path) in enumerate(wanted):
        parts, texts, total, k = [], [], 0, 3 * i
        while total < minutes * 60 * sp.sample_rate:
            j = k % len(pool)
            if j not in spoken:
                spoken[j] = sp.speak_paragraphs([pool[j]])
            parts.append(spoken[j])
            texts.append(pool[j])
            total += len(spoken[j])
            k += 1
        audio_path.write_bytes(encode(np.concatenate(parts), sp.sample_rate, "mp3", bitrate="64k"))
        text_path.write_text(" ".join(texts))
    return [(a, t.read_text()) for a, t in wanted]


# -- one configuration (in its own process) -------------------------------------------------------
def run_library(sources: list[str]) -> tuple[float, dict[str, dict[str, float]], dict[str, set]]:
    from mediaflow import pipeline
    from mediaflow.config import get_settings

    s = get_settings()
    seconds, pids = {}, {}
    t_start = time.perf_counter()
    for src in sources:
        t0 = time.perf_counter()
        ep = pipeline.ingest(src, s)
        ingest_s = time.perf_counter() - t0
        run = pipeline.process(ep.id, s)  # the same chain as the flows, in a plain loop
        seconds[ep.id], pids[ep.id] = {"ingest": ingest_s, **run.seconds}, {os.getpid()}
    return time.perf_counter() - t_start, seconds, pids


def run_flow(sources: list[str]) -> tuple[float, dict[str, dict[str, float]], dict[str, set]]:
    from prefect import get_client

    get_client(sync_client=True)  # the embedded Prefect API starts here, outside the timing
    from flows.episodes import process_batch

    t0 = time.perf_counter()
    result = process_batch(sources)
    wall = time.perf_counter() - t0
    if result["failed"]:
        raise SystemExit(f"episodes failed: {result['failed']}")
    steps = result["steps"]
    return wall, {k: s.seconds for k, s in steps.items()}, {k: set(s.pids.values()) for k, s in steps.items()}


def one(config: str, sources: list[str]) -> dict:
    loads: list[float] = []
    stop = threading.Event()

    def sample_load():
        while not stop.wait(2.0):
            loads.append(os.getloadavg()[0])

    sampler = threading.Thread(target=sample_load, daemon=True)
    load_before = os.getloadavg()[0]
    sampler.start()
    wall, seconds, pids = (run_library if config == "library" else run_flow)(sources)
    stop.set()

    from mediaflow import resources
    from mediaflow.config import get_settings

    s = get_settings()
    store = resources.get_store(s.db_url)
    texts = {store.get_episode(ep_id).source_name: store.get_transcript(ep_id).text for ep_id in seconds}
    audio_s = sum(store.get_episode(ep_id).duration_s for ep_id in seconds)
    return {"config": config, "wall_s": wall, "audio_s": audio_s, "stage_s": seconds, "texts": texts,
            "pids": sorted({p for ps in pids.values() for p in ps}),
            "load_before": load_before, "load_mean": statistics.fmean(loads) if loads else load_before,
            "load_max": max(loads, default=load_before)}


def child_env(config: str, data: str) -> dict[str, str]:
    env = dict(os.environ, MEDIAFLOW_DATA_DIR=data, PREFECT_HOME=str(Path(data) / "prefect"),
               PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_LOGGING_LEVEL="WARNING", HF_HUB_OFFLINE="1",
               PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180")
    for k in ("MEDIAFLOW_DATABASE_URL", "MEDIAFLOW_DASK_ADDRESS", "PREFECT_API_URL", "MEDIAFLOW_ASR_THREADS"):
        env.pop(k, None)
    if config.startswith("dask"):
        env.update(MEDIAFLOW_TASK_RUNNER="dask", MEDIAFLOW_DASK_WORKERS=config.split(":")[1])
    else:
        env["MEDIAFLOW_TASK_RUNNER"] = "default"
    return env


# -- report ---------------------------------------------------------------------------------------
def normalise(s: str) -> str:
    import re

    s = s.lower().replace("-", " ")
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9' ]", " ", s)).strip()


def row(raw: dict) -> dict:
    n = len(raw["stage_s"])
    slots = int(raw["config"].split(":")[1]) if raw["config"].startswith("dask") else 1
    work = sum(sum(stages.values()) for stages in raw["stage_s"].values())
    per_stage = {st: sum(s.get(st, 0.0) for s in raw["stage_s"].values()) for st in STAGES}
    return {
        "config": raw["config"], "episodes": n, "audio_min": raw["audio_s"] / 60, "wall_s": raw["wall_s"],
        "episodes_per_h": n * 3600 / raw["wall_s"], "audio_h_per_h": raw["audio_s"] / raw["wall_s"],
        "work_s": work, "stage_s": per_stage, "slots": slots,
        "overhead_s_per_episode": (raw["wall_s"] * slots - work) / n,
        "processes": len(raw["pids"]), "wer_mean": raw.get("wer_mean"),
        "load_before": raw["load_before"], "load_mean": raw["load_mean"], "load_max": raw["load_max"],
    }


def overhead(r: dict) -> str:
    # Threads of the default runner overlap their stages (Σ stage > wall): no slot time to compare.
    return "n/a (threads overlap)" if r["config"] == "default" else f"{r['overhead_s_per_episode']:.1f}"


def markdown(rows: list[dict]) -> str:
    head = ("| runner | processes | episodes | audio min | wall s | episodes/h | audio-h/h | Σ stage s "
            "(transcribe) | overhead s/episode | mean WER | load avg (mean/max) |")
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        lines.append(
            f"| {r['config']} | {r['processes']} | {r['episodes']} | {r['audio_min']:.1f} | {r['wall_s']:.0f} "
            f"| {r['episodes_per_h']:.0f} | {r['audio_h_per_h']:.1f} | {r['work_s']:.0f} ({r['stage_s']['transcribe']:.0f}) "
            f"| {overhead(r)} | {r['wer_mean']:.3f} "
            f"| {r['load_mean']:.1f}/{r['load_max']:.1f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=8)
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--configs", default="library,default,dask:1,dask:2")
    ap.add_argument("--out", type=Path, default=RESULTS / "throughput.json")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one configuration, print JSON
    ap.add_argument("--table", action="store_true", help="print the table of the last --out and exit")
    args = ap.parse_args()
    if args.table:
        print(markdown(json.loads(args.out.read_text())["rows"]))
        return

    inputs = episodes(args.episodes, args.minutes)
    sources = [str(p) for p, _ in inputs]
    if args.one:
        print("RESULT " + json.dumps(one(args.one, sources)))
        return

    import jiwer

    refs = {p.name: normalise(t) for p, t in inputs}
    rows, raws = [], []
    for config in args.configs.split(","):
        with tempfile.TemporaryDirectory(prefix="mf-throughput-") as data:
            print(f"{config}: {args.episodes} × {args.minutes:g} min ...", file=sys.stderr, flush=True)
            done = subprocess.run([sys.executable, __file__, "--one", config, "--episodes", str(args.episodes),
                                   "--minutes", str(args.minutes)], env=child_env(config, data), cwd=ROOT,
                                  capture_output=True, text=True)
            line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if done.returncode or line is None:
                sys.exit(f"{config} failed ({done.returncode}):\n{done.stderr[-3000:]}")
            raw = json.loads(line[len("RESULT "):])
        raw["wer_mean"] = statistics.fmean(
            jiwer.wer(refs[name], normalise(hyp)) for name, hyp in raw.pop("texts").items())
        raws.append(raw)
        rows.append(row(raw))
        print(markdown(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)

    report = {"episodes": args.episodes, "minutes": args.minutes, "cpu_count": os.cpu_count(),
              "rows": rows, "raw": raws}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(markdown(rows))


if __name__ == "__main__":
    main()
