"""Service benchmark: a bounded load on loopback against a real uvicorn.

    .venv/bin/python bench/service.py [--seconds 30] [--rate 200] [--tts-voice student] [--workers 1,2]

1. `GET /episodes/{id}/chapters` at a fixed arrival rate (open loop: requests are sent on
   schedule whether or not earlier ones returned, so a slow server shows as latency, not as a
   politely lower rate): achieved req/s, p50/p99 latency, errors. Target: p99 <= 20 ms at 200 req/s.
2. `POST /tts` with the given voice, closed loop with 4 clients, for 1 and 2 uvicorn workers:
   requests/s, audio seconds per second, p50/p99, errors.

Traffic goes to 127.0.0.1 only, is bounded in count and time, and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
SENTENCES = [
    "Because you listened to Volcano at Dawn, try How Coffee Is Made: it gets into roasting and espresso.",
    "Here is a short one about sleep and memory.",
    "Episode 12 covers the first computers, from Babbage to ENIAC, in under twenty minutes.",
    "If you liked the history of coffee houses, this one on London's merchants is for you.",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data: str, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "MEDIAFLOW_DATA_DIR": data, "HF_HUB_OFFLINE": "1", "MEDIAFLOW_TTS_CONCURRENCY": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory", "--host", "127.0.0.1",
         "--port", str(port), "--workers", str(workers), "--log-level", "warning"],
        cwd=str(ROOT), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    import httpx

    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("uvicorn did not start")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def prepare_episode(data: str) -> str:
    """One processed episode (Piper speech from the sample script) in a fresh data dir."""
    os.environ["MEDIAFLOW_DATA_DIR"] = data
    os.environ.setdefault("PREFECT_HOME", str(Path(data) / "prefect"))
    from flows.episodes import process_episode
    from mediaflow.audio import encode
    from mediaflow.sample import SCRIPT
    from mediaflow.tts.piper import PiperSpeaker

    sp = PiperSpeaker()
    path = Path(data) / "bench-episode.mp3"
    path.write_bytes(encode(sp.speak_paragraphs(SCRIPT[:6]), sp.sample_rate, "mp3"))
    return process_episode(str(path), title="Service benchmark episode")


def pct(xs: list[float], q: float) -> float | None:
    return round(float(np.percentile(xs, q)) * 1000, 2) if xs else None


class KeepAlivePool:
    """HTTP/1.1 GETs over reused loopback connections, on bare asyncio streams: a load client light
    enough to leave the server the bottleneck (httpx's AsyncClient saturated a core near 150 req/s
    here and queued requests for seconds, which read as server latency)."""

    def __init__(self, url: str):
        host, port = url.split("//", 1)[1].rsplit(":", 1)
        self.host, self.port, self.idle = host, int(port), []

    async def get(self, path: str) -> int:
        request = f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode()
        conn, head = self.idle.pop() if self.idle else None, None
        if conn:
            try:
                head = await self._send(conn, request)
            except (OSError, asyncio.IncompleteReadError):  # uvicorn closes connections idle for 5 s:
                conn[1].close()  # like any HTTP client, retry a stale one on a fresh connection
                conn = None
        if conn is None:
            conn = await asyncio.open_connection(self.host, self.port)
            head = await self._send(conn, request)
        length = next((int(ln.split(b":", 1)[1]) for ln in head.split(b"\r\n")
                       if ln.lower().startswith(b"content-length:")), 0)
        await conn[0].readexactly(length)
        self.idle.append(conn)
        return int(head.split(b" ", 2)[1])

    @staticmethod
    async def _send(conn, request: bytes) -> bytes:
        reader, writer = conn
        writer.write(request)
        await writer.drain()
        return await reader.readuntil(b"\r\n\r\n")

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()


async def open_loop(url: str, path: str, rate: float, seconds: float) -> dict:
    lat, kinds = [], {}
    n = int(rate * seconds)
    pool = KeepAlivePool(url)
    await pool.get(path)  # warm the route

    async def one() -> None:
        t0 = time.perf_counter()
        try:
            status = await pool.get(path)
            kind = None if status == 200 else str(status)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            kind = type(exc).__name__
        if kind:
            kinds[kind] = kinds.get(kind, 0) + 1
        lat.append(time.perf_counter() - t0)

    start = time.perf_counter()
    tasks = []
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    pool.close()
    return {"requests": n, "seconds": round(elapsed, 2), "achieved_rps": round(n / elapsed, 1),
            "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99), "max_ms": pct(lat, 100),
            "errors": sum(kinds.values()), "error_kinds": kinds}


async def closed_loop(url: str, voice: str, clients: int, seconds: float) -> dict:
    import httpx

    lat, audio_s, errors, done = [], 0.0, 0, 0
    end = time.perf_counter() + seconds
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        await client.post("/tts", json={"text": "Warm up.", "voice": voice, "format": "pcm", "stream": False})

        async def worker(k: int) -> None:
            nonlocal audio_s, errors, done
            i = k
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                r = await client.post("/tts", json={"text": SENTENCES[i % len(SENTENCES)], "voice": voice,
                                                    "format": "pcm", "stream": False})
                lat.append(time.perf_counter() - t0)
                if r.status_code == 200:
                    audio_s += len(r.content) / 2 / int(r.headers.get("x-sample-rate", 24000))
                    done += 1
                else:
                    errors += 1
                i += clients

        start = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(clients)))
        elapsed = time.perf_counter() - start
    return {"requests": done, "seconds": round(elapsed, 2), "rps": round(done / elapsed, 2),
            "audio_s_per_s": round(audio_s / elapsed, 2), "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99),
            "errors": errors}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--tts-voice", default="auto", help="voice id; auto = the configured default voice")
    ap.add_argument("--tts-seconds", type=float, default=30)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--out", default=str(RESULTS / "service.json"))
    ap.add_argument("--prepare", help=argparse.SUPPRESS)  # internal: process the episode into this data dir
    args = ap.parse_args()
    if args.prepare:
        print(prepare_episode(args.prepare))
        return

    from mediaflow.tts.voices import default_voice_id

    voice = default_voice_id() if args.tts_voice == "auto" else args.tts_voice
    data = tempfile.mkdtemp(prefix="mf-bench-service-")
    # In a process of its own: the embedded Prefect server it starts would otherwise keep running in
    # this one, beside the load client, for the whole measurement.
    eid = subprocess.run([sys.executable, __file__, "--prepare", data], check=True, capture_output=True,
                         text=True).stdout.strip().splitlines()[-1]
    result = {"load_average_at_start": os.getloadavg(), "cores": os.cpu_count(), "voice": voice}

    proc, url = start_server(data, 1)
    try:
        result["chapters"] = asyncio.run(open_loop(url, f"/episodes/{eid}/chapters", args.rate, args.seconds))
    finally:
        stop(proc)
    result["tts"] = {}
    for w in [int(x) for x in args.workers.split(",")]:
        proc, url = start_server(data, w)
        try:
            result["tts"][w] = asyncio.run(closed_loop(url, voice, 4, args.tts_seconds))
        finally:
            stop(proc)

    RESULTS.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    c = result["chapters"]
    print(f"load average at start: {result['load_average_at_start']}")
    print("| load | requests | achieved req/s | p50 ms | p99 ms | max ms | errors |")
    print("|---|---|---|---|---|---|---|")
    print(f"| GET chapters at {args.rate:.0f} req/s, {args.seconds:.0f} s | {c['requests']} | {c['achieved_rps']} | "
          f"{c['p50_ms']} | {c['p99_ms']} | {c['max_ms']} | {c['errors']} |")
    print(f"\n| POST /tts ({voice}), 4 clients | requests | req/s | audio s per s | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|---|")
    for w, t in result["tts"].items():
        print(f"| {w} worker(s) | {t['requests']} | {t['rps']} | {t['audio_s_per_s']} | {t['p50_ms']} | "
              f"{t['p99_ms']} | {t['errors']} |")
    print(f"\nJSON: {args.out}")


if __name__ == "__main__":
    main()
