"""Service memory: resident set size of a real `mediaflow serve` idle, loaded, and after it unloads
its idle models.

    .venv/bin/python bench/memory.py [--idle-s 20]

Phases, each measured on the server process alone (its Prefect API child is reported apart):
`started` (nothing loaded), `loaded` (a sample episode processed: Whisper, the embedder; then one
sentence from each fast voice), `unloaded` (after `--idle-s` without use). Prints a table and writes
bench/results/memory.json. Traffic goes to 127.0.0.1 only and stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"


def rss_mb(proc: psutil.Process) -> float:
    return round(proc.memory_info().rss / 2**20, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--idle-s", type=float, default=20.0, help="MEDIAFLOW_MODELS_IDLE_S for the server")
    ap.add_argument("--voices", default="student,hibari", help="voices to speak one sentence each")
    args = ap.parse_args()

    import socket

    from mediaflow.sample import sample_episode

    data = Path(tempfile.mkdtemp(prefix="mf-memory-"))
    episode = sample_episode(data / "samples", 1)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "MEDIAFLOW_DATA_DIR": str(data), "PREFECT_HOME": str(data / "prefect"),
           "MEDIAFLOW_MODELS_IDLE_S": str(args.idle_s)}
    env.pop("PREFECT_API_URL", None)
    server = psutil.Popen([str(Path(sys.executable).with_name("mediaflow")), "serve", "--port", str(port)], env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300)
    rows = []

    def measure(phase: str) -> None:
        child = sum(c.memory_info().rss for c in server.children(recursive=True)) / 2**20
        health = client.get("/health").json()
        rows.append({"phase": phase, "server_rss_mb": rss_mb(server), "children_rss_mb": round(child, 1),
                     "models_loaded": ",".join(health["models_loaded"]) or "-"})

    try:
        for _ in range(600):
            try:
                if client.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        time.sleep(2)
        measure("started")
        with open(episode, "rb") as f:
            eid = client.post("/episodes", files={"file": (episode.name, f, "audio/mpeg")}).json()["id"]
        while client.get(f"/episodes/{eid}").json()["status"] not in ("done", "failed"):
            time.sleep(0.5)
        measure("episode processed")
        for voice in args.voices.split(","):
            r = client.post("/tts", json={"text": "Because you liked this one, try the next.", "voice": voice,
                                          "format": "wav", "stream": False})
            r.raise_for_status()
        measure(f"loaded (+ voices {args.voices})")
        deadline = time.monotonic() + args.idle_s * 3 + 60
        while client.get("/health").json()["models_unloaded_at"] is None and time.monotonic() < deadline:
            time.sleep(1)
        measure(f"unloaded after {args.idle_s:g} s idle")
    finally:
        client.close()
        server.terminate()
        server.wait(30)

    print(f"{'phase':40s} {'server RSS MB':>14s} {'children MB':>12s}  models")
    for r in rows:
        print(f"{r['phase']:40s} {r['server_rss_mb']:14.1f} {r['children_rss_mb']:12.1f}  {r['models_loaded']}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "date": time.strftime("%Y-%m-%d"),
           "idle_s": args.idle_s, "rows": rows}
    (RESULTS / "memory.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
