"""TTS benchmark: the yardstick every voice is measured with (a trained student adds its row).

    .venv/bin/python bench/tts.py [--limit N] [--voices teacher,piper-joe,hibari,student] [--student CHECKPOINT]
                                  [--set bench|own] [--out bench/results/tts.json]
    .venv/bin/python bench/tts.py --route [VOICE] [--repeats 7]    # what a request costs beyond the model
    .venv/bin/python bench/tts.py --lean [--repeats 5]             # issue 17's lean-runtime targets, one table

For each voice, on the held-out sentences in bench/tts_sentences.txt (`--set own`: the student's second
held-out set, bench/tts_sentences_own.txt, written by hand before the version 2 corpus was trained on):
- speed: median real-time factor (synthesis seconds / audio seconds, per sentence, text frontend
  included, after one warm-up call), the same with process CPU seconds (which other work on the
  machine does not inflate), and time to first audio for a 20-word sentence (`stream`, median of 3);
- peak memory: max RSS of a fresh subprocess that loads the voice and speaks every sentence;
- size: parameters counted in the loaded weights (ONNX initializer elements, or the student's tensors)
  and the bytes of the files it loaded (`Voice.count_parameters`, `Voice.files`), not the figures the
  registry lists;
- intelligibility: corpus WER of the bundled Whisper tiny.en transcript against the input, both sides
  passed through the frontend's `normalize`, lower-cased and stripped of punctuation;
- closeness to the teacher: mel-cepstral distortion (MCD, dB) against the teacher's audio of the same
  sentence. Method: decode both to 16 kHz; 40-band mel power spectrogram (25 ms window, 10 ms hop,
  0-8 kHz, torchaudio); natural-log amplitude; orthonormal DCT-II divided by sqrt(2 * 40), which gives
  the real-cepstrum convention log|X(w)| = c0 + 2 sum c_n cos(n w) that the MCD formula assumes;
  coefficients c1..c24 (c0, the energy, left out); leading and trailing frames 40 dB below the
  loudest trimmed; dynamic time warping with steps (1,0), (0,1), (1,1) on Euclidean distance;
  MCD = mean over the warping path of (10 / ln 10) * sqrt(2 * sum_d (c_d - c'_d)^2). These are
  MFCC-style cepstra, not SPTK mel-generalised cepstra, so the numbers compare voices within this
  table, not with MCDs quoted in papers.

Audio is kept in bench/results/tts_audio/<voice>/ for listening. The 2 cores are shared with other
work on a developer machine: the machine and the load average before and after are recorded with the
results. The speed figures the voice registry lists (`ReferenceSpeed` in each `mediaflow/tts/voices/`
module) come from a run of this script on the reference machine; update them from a new one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
SENTENCE_SETS = {"bench": ROOT / "bench" / "tts_sentences.txt", "own": ROOT / "bench" / "tts_sentences_own.txt"}
SET_ENV = "MEDIAFLOW_TTS_BENCH_SET"  # which set the synthesis workers read
FIRST_AUDIO_TEXT = (  # 20 words
    "Because you listened to The History Hour last night, try Deep Time next: "
    "it gets into volcanoes and ancient oceans."
)
DEFAULT_VOICES = "teacher,piper-joe,hibari"  # and "student" once its checkpoint exists


def sentence_set() -> str:
    return os.environ.get(SET_ENV, "bench")


def _suffix() -> str:
    """'' for the benchmark's sentences, '_<set>' for another set: its audio and JSON keep apart."""
    return "" if sentence_set() == "bench" else f"_{sentence_set()}"


def audio_dir() -> Path:
    return RESULTS / f"tts_audio{_suffix()}"


def load_sentences(limit: int | None = None) -> list[str]:
    path = SENTENCE_SETS[sentence_set()]
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    out = [ln for ln in lines if ln and not ln.startswith("#")]
    return out[:limit] if limit else out


# -- synthesis worker (one subprocess per voice, so its peak RSS is its own) -----------------------
def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def synth_worker(voice_id: str, limit: int | None, threads: int) -> dict:
    os.environ["HF_HUB_OFFLINE"] = "1"
    from mediaflow.audio import encode
    from mediaflow.tts.voices import get_voice, voice_info

    t0 = time.perf_counter()
    voice = get_voice(voice_id, threads=threads)
    load_s = time.perf_counter() - t0
    voice.synthesize("Warm up.")
    out_dir = audio_dir() / voice_id
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, text in enumerate(load_sentences(limit)):
        c0, t0 = _cpu_seconds(), time.perf_counter()
        audio = voice.synthesize(text)
        seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
        duration = len(audio) / voice.sample_rate
        (out_dir / f"{i:03d}.wav").write_bytes(encode(audio, voice.sample_rate, "wav"))
        rows.append({"i": i, "audio_s": round(duration, 3), "synth_s": round(seconds, 4),
                     "rtf": round(seconds / duration, 4), "cpu_rtf": round(cpu / duration, 4)})
    assert len(FIRST_AUDIO_TEXT.split()) == 20
    firsts = []
    for _ in range(3):
        t0 = time.perf_counter()
        next(iter(voice.stream(FIRST_AUDIO_TEXT)))
        firsts.append(time.perf_counter() - t0)
    peak_rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # counting reads the weights again
    return {
        "voice": voice_id, "sample_rate": voice.sample_rate, "load_s": round(load_s, 2),
        "parameters": voice.count_parameters(), "size_bytes": sum(Path(f).stat().st_size for f in voice.files()),
        "license": voice_info(voice_id).license,
        "first_audio_s": round(statistics.median(firsts), 3), "peak_rss_mb": peak_rss_mb, "sentences": rows,
    }


def run_synth(voice_id: str, limit: int | None, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", voice_id, "--threads", str(threads)]
    if limit:
        cmd += ["--limit", str(limit)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{voice_id}: synthesis worker failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- intelligibility ---------------------------------------------------------------------------------
def words(text: str) -> str:
    from mediaflow.tts.frontend import normalize

    s = normalize(text).lower().replace("-", " ")
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9' ]", " ", s)).strip()


def transcribe_all(voice_ids: list[str], n: int, threads: int) -> dict[str, list[str]]:
    from mediaflow.asr import Transcriber
    from mediaflow.audio import decode

    tr = Transcriber("tiny.en", threads=threads)
    return {v: [tr.transcribe(decode(audio_dir() / v / f"{i:03d}.wav")).text for i in range(n)] for v in voice_ids}


# -- mel-cepstral distortion -------------------------------------------------------------------------
def mel_cepstra(path: Path, n_mels: int = 40, n_coef: int = 24):
    """(frames, n_coef) cepstra c1..c24 of a file, leading/trailing silence trimmed."""
    import numpy as np
    import torch
    import torchaudio

    from mediaflow.audio import decode

    x = torch.from_numpy(decode(path, sample_rate=16000).copy())
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=16000, n_fft=512, win_length=400, hop_length=160, f_min=0.0, f_max=8000.0,
        n_mels=n_mels, power=2.0, center=True,
    )(x)  # (n_mels, frames)
    log_amp = 0.5 * torch.log(mel.clamp_min(1e-10))
    dct = torchaudio.functional.create_dct(n_mels, n_mels, norm="ortho")  # (n_mels, n_mfcc)
    # ortho DCT-II / sqrt(2M) = c_n of log|X(w)| = c0 + 2 sum c_n cos(nw), the convention the MCD formula assumes
    cep = (log_amp.T @ dct).numpy().astype(np.float64) / np.sqrt(2 * n_mels)
    energy_db = 10 * np.log10(mel.sum(0).numpy() + 1e-10)
    voiced = np.flatnonzero(energy_db > energy_db.max() - 40)
    cep = cep[voiced[0]: voiced[-1] + 1] if len(voiced) else cep
    return cep[:, 1: n_coef + 1]


def dtw_path(cost):
    """Minimum-cost monotonic alignment with steps (1,0), (0,1), (1,1); rows computed with numpy.

    Within a row, D[i,j] = min(A[j], D[i,j-1] + c[i,j]) with A[j] = c[i,j] + min(D[i-1,j-1], D[i-1,j]);
    unrolled, D[i,j] = S[j] + min_{k<=j}(A[k] - S[k]) with S the row's cumulative cost: one
    `minimum.accumulate` per row instead of a Python loop over columns.
    """
    import numpy as np

    n, m = cost.shape
    D = np.empty((n, m))
    D[0] = np.cumsum(cost[0])
    for i in range(1, n):
        prev = D[i - 1]
        a = cost[i] + np.minimum(prev, np.concatenate(([np.inf], prev[:-1])))
        s = np.cumsum(cost[i])
        D[i] = s + np.minimum.accumulate(a - s)
    i, j, path = n - 1, m - 1, [(n - 1, m - 1)]
    while i or j:
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        else:
            k = int(np.argmin((D[i - 1, j - 1], D[i - 1, j], D[i, j - 1])))
            i, j = (i - 1, j - 1) if k == 0 else (i - 1, j) if k == 1 else (i, j - 1)
        path.append((i, j))
    return path[::-1]


def mcd(ref_path: Path, test_path: Path) -> float:
    import numpy as np

    a, b = mel_cepstra(ref_path), mel_cepstra(test_path)
    sq = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2 * a @ b.T
    cost = np.sqrt(np.maximum(sq, 0.0))
    path = dtw_path(cost)
    per_frame = np.array([cost[i, j] for i, j in path])
    return float(np.mean(10 / np.log(10) * np.sqrt(2) * per_frame))


# -- report --------------------------------------------------------------------------------------------
def machine() -> str:
    """The CPU model, cores and memory of this machine, for the record."""
    cpu = platform.processor() or platform.machine()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next(ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB"


def fmt_bytes(n: int | None) -> str:
    return "–" if n is None else f"{n / 1e6:.1f} MB"


def fmt_params(n: int | None) -> str:
    return "–" if n is None else f"{n / 1e6:.1f} M"


# -- what a request costs beyond the model ----------------------------------------------------------------
ROUTE_TEXT = ("Because you listened to The History Hour last night, try Deep Time next: it gets into volcanoes, "
              "ancient oceans and the people who study them.")  # about 7 s of speech, one sentence
ROUTE_FORMATS = ("pcm", "wav", "mp3", "ogg-opus", "aac", "flac")
OPENAI_NAMES = {"pcm": "pcm", "wav": "wav", "mp3": "mp3", "ogg-opus": "opus", "aac": "aac", "flac": "flac"}


def route_worker(voice_id: str, repeats: int, threads: int) -> dict:
    """What a request costs against the model's own time for ROUTE_TEXT (`synthesize`: frontend, network,
    vocoder), through `/tts` (streamed and not) and `/v1/audio/speech`, for each format, on a real uvicorn in
    this process read to the last byte by an httpx client. Model calls and requests alternate, so both see
    the same load; wall and CPU seconds (server and client together, and any encoder process the server
    started), medians of `repeats` pairs."""
    import tempfile
    import threading

    import httpx
    import uvicorn

    os.environ.update(HF_HUB_OFFLINE="1", MEDIAFLOW_DATA_DIR=tempfile.mkdtemp(prefix="bench-tts-route-"),
                      MEDIAFLOW_TTS_THREADS=str(threads))
    os.environ.pop("MEDIAFLOW_API_KEY", None)
    import flows.episodes  # noqa: F401 - the server's job thread imports it (Prefect: seconds of CPU) at start; here
    # first, so that import does not land on the first requests measured
    from mediaflow.tts.voices import get_voice
    from service.app import create_app

    voice = get_voice(voice_id, threads=threads)  # the very object the server speaks with
    audio_s = len(voice.synthesize(ROUTE_TEXT)) / voice.sample_rate

    def cpu() -> float:  # this process and the children it waited for (an encoder started per request)
        return sum(r.ru_utime + r.ru_stime for r in map(resource.getrusage,
                                                         (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)))

    def cost(fn) -> tuple[float, float]:
        c0, t0 = cpu(), time.perf_counter()
        fn()
        return time.perf_counter() - t0, cpu() - c0

    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    rows, model_wall, model_cpu = [], [], []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
        def post(path: str, body: dict) -> None:
            r = client.post(path, json=body)
            if r.status_code != 200 or len(r.content) < 1000:
                raise SystemExit(f"{path} {body.get('format') or body.get('response_format')}: {r.status_code} "
                                 f"{r.text[:200]}")

        for fmt in ROUTE_FORMATS:
            row = {"format": fmt}
            for key, path, body in (
                ("tts_stream", "/tts", {"text": ROUTE_TEXT, "voice": voice_id, "format": fmt}),
                ("tts_whole", "/tts", {"text": ROUTE_TEXT, "voice": voice_id, "format": fmt, "stream": False}),
                ("openai", "/v1/audio/speech", {"input": ROUTE_TEXT, "voice": voice_id,
                                                "response_format": OPENAI_NAMES[fmt]}),
            ):
                post(path, body)  # warm: the encoder's first use
                pairs = [(cost(lambda: voice.synthesize(ROUTE_TEXT)), cost(lambda: post(path, body)))
                         for _ in range(repeats)]
                model_wall += [m[0] for m, _ in pairs]
                model_cpu += [m[1] for m, _ in pairs]
                row[f"{key}_s"] = round(statistics.median(r[0] for _, r in pairs), 4)
                row[f"{key}_x"] = round(statistics.median(r[0] / m[0] for m, r in pairs), 2)
                row[f"{key}_cpu_x"] = round(statistics.median(r[1] / max(m[1], 1e-6) for m, r in pairs), 2)
            rows.append(row)
    server.should_exit = True
    thread.join(timeout=15)
    return {"voice": voice_id, "text": ROUTE_TEXT, "audio_s": round(audio_s, 2),
            "model_s": round(statistics.median(model_wall), 4), "model_cpu_s": round(statistics.median(model_cpu), 4),
            "repeats": repeats, "formats": rows}


def route_report(voice_id: str, repeats: int, threads: int, out: Path) -> None:
    cmd = [sys.executable, __file__, "--route-worker", voice_id, "--threads", str(threads), "--repeats", str(repeats)]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"route worker failed:\n{run.stderr[-2000:]}")
    result = json.loads(run.stdout.strip().splitlines()[-1])
    result.update(command="bench/tts.py " + " ".join(sys.argv[1:]), date=time.strftime("%Y-%m-%d"),
                  machine=machine(), load_average=[round(x, 2) for x in os.getloadavg()])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"{voice_id}: {result['audio_s']} s of audio; the model alone {1000 * result['model_s']:.0f} ms wall, "
          f"{1000 * result['model_cpu_s']:.0f} ms CPU (medians). A request: median wall ms, and the medians of its "
          f"wall and CPU seconds over the model's in the same pair (wall× / CPU×):")
    print("| format | POST /tts (streamed) | POST /tts (stream: false) | POST /v1/audio/speech |")
    print("|---|---|---|---|")
    for r in result["formats"]:
        print(f"| {r['format']} | " + " | ".join(
            f"{1000 * r[k + '_s']:.0f} ms ({r[k + '_x']:.2f}× / {r[k + '_cpu_x']:.2f}×)"
            for k in ("tts_stream", "tts_whole", "openai")) + " |")
    print(f"\n{result['machine']}, {result['date']}, load average {result['load_average'][0]}; JSON: {out}")


# -- the lean runtime's targets (issue 17 item 5), one table -------------------------------------------------
def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def lean_rss_worker(voice_id: str, threads: int) -> dict:
    """A fresh process that loads `voice_id` and speaks as the server does: the 20-word text streamed, then
    20 held-out sentences streamed and synthesised whole. VmRSS when it started (the interpreter with this
    script's standard-library imports), VmHWM (peak resident) at the end, and which heavy modules came in."""
    start = _status_mb("VmRSS")
    os.environ["HF_HUB_OFFLINE"] = "1"
    from mediaflow.tts.voices import get_voice

    voice = get_voice(voice_id, threads=threads)
    loaded = _status_mb("VmRSS")
    for text in [FIRST_AUDIO_TEXT, *load_sentences(20)]:
        for _ in voice.stream(text):
            pass
        voice.synthesize(text)
    return {"start_mb": round(start, 1), "loaded_mb": round(loaded, 1), "peak_mb": round(_status_mb("VmHWM"), 1),
            "end_mb": round(_status_mb("VmRSS"), 1),
            "runtime": getattr(voice, "runtime", None),
            "heavy_modules": sorted(m for m in ("torch", "transformers", "scipy", "av", "onnx") if m in sys.modules)}


def lean_speed_worker(threads: int, n: int, repeats: int) -> dict:
    """The student and hibari loaded in one process, speaking the first `n` held-out sentences in turn
    (student, hibari, student, ...), so both meet the same load: median wall and CPU seconds per second of
    audio. Then time to the first chunk of `stream(FIRST_AUDIO_TEXT)` for each, `repeats` × 4 times."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from mediaflow.tts.voices import get_voice

    voices = {v: get_voice(v, threads=threads) for v in ("student", "hibari")}
    for v in voices.values():
        v.synthesize("Warm up.")
        next(iter(v.stream(FIRST_AUDIO_TEXT)))
    rtf = {v: [] for v in voices}
    cpu_rtf = {v: [] for v in voices}
    for text in load_sentences(n):
        for name, v in voices.items():
            c0, t0 = _cpu_seconds(), time.perf_counter()
            audio = v.synthesize(text)
            wall, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
            rtf[name].append(wall * v.sample_rate / len(audio))
            cpu_rtf[name].append(cpu * v.sample_rate / len(audio))
    first = {v: [] for v in voices}
    first_cpu = {v: [] for v in voices}
    for _ in range(4 * repeats):
        for name, v in voices.items():
            c0, t0 = _cpu_seconds(), time.perf_counter()
            chunks = v.stream(FIRST_AUDIO_TEXT)
            next(chunks)
            first[name].append(time.perf_counter() - t0)
            first_cpu[name].append(_cpu_seconds() - c0)
            chunks.close()
    med = statistics.median
    return {v: {"rtf": round(med(rtf[v]), 4), "cpu_rtf": round(med(cpu_rtf[v]), 4),
                "first_audio_ms": round(1000 * med(first[v]), 1), "first_audio_cpu_ms": round(1000 * med(first_cpu[v]), 1),
                "sentences": n, "first_audio_repeats": len(first[v])} for v in voices}


def lean_encoder_costs(repeats: int) -> dict:
    """CPU ms to encode ROUTE_TEXT's audio (the student's) once per format in this process, median of
    `repeats`; MP3 both by the system's LAME (served) and by the LAME PyAV bundles (used without one)."""
    from mediaflow.tts import encoding
    from mediaflow.tts.voices import get_voice

    audio = get_voice("student", threads=1).synthesize(ROUTE_TEXT)

    def cost(make) -> float:
        runs = []
        for _ in range(repeats):
            c0 = _cpu_seconds()
            enc = make()
            enc.encode(audio)
            enc.finish()
            runs.append(_cpu_seconds() - c0)
        return round(1000 * statistics.median(runs), 1)

    out = {"audio_s": round(len(audio) / 24000, 2)}
    for fmt in ("mp3", "ogg-opus", "aac", "flac"):
        out[fmt] = cost(lambda: encoding.Encoder(fmt, 24000))
    out["mp3 (PyAV's LAME)"] = cost(lambda: encoding._Libav("mp3", 24000))
    return out


def _sub(args: list[str]) -> dict:
    run = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{run.stderr[-2000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def lean_report(repeats: int, threads: int, out: Path) -> None:
    """Issue 17 item 5's targets measured in one go: memory (3 fresh processes), speed and first audio
    (student and hibari alternating in one process), what a request costs per format (`route_worker`)."""
    load_before = os.getloadavg()
    rss = [_sub(["--lean-rss-worker", "student", "--threads", str(threads)]) for _ in range(3)]
    speed = _sub(["--lean-speed-worker", "--threads", str(threads), "--repeats", str(repeats)])
    encoders = _sub(["--lean-encoder-worker", "--repeats", str(repeats)])
    route = _sub(["--route-worker", "student", "--threads", str(threads), "--repeats", str(repeats)])
    result = {
        "command": "bench/tts.py " + " ".join(sys.argv[1:]), "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine(), "threads": threads, "repeats": repeats, "nice": os.nice(0),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "rss": rss, "speed": speed, "encoders": encoders, "route": route,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print_lean(result, out)


def print_lean(result: dict, out: Path) -> None:
    """The table of `lean_report` (also for a JSON it wrote before: `--lean-print PATH`)."""
    med = statistics.median
    rss, speed, route, encoders = result["rss"], result["speed"], result["route"], result["encoders"]
    peak = med(r["peak_mb"] for r in rss)
    start = med(r["start_mb"] for r in rss)
    s, h = speed["student"], speed["hibari"]

    def met(ok: bool) -> str:
        return "yes" if ok else "**no**"

    print("| target (issue 17, item 5) | measured | goal | met |")
    print("|---|---|---|---|")
    print(f"| resident memory: peak RSS (VmHWM) of a fresh process that loads the student and speaks 21 texts, "
          f"whole process, median of {len(rss)} | {peak:.0f} MB (the interpreter alone at start: {start:.0f} MB; "
          f"heavy modules in: {', '.join(rss[0]['heavy_modules']) or 'none of torch, transformers, scipy, av, onnx'}) "
          f"| ≤ 200 MB | {met(peak <= 200)} |")
    print(f"| first audio, 20 words: `stream()` to its first PCM chunk, median of {s['first_audio_repeats']} "
          f"| {s['first_audio_ms']:.0f} ms wall, {s['first_audio_cpu_ms']:.0f} ms CPU (hibari: "
          f"{h['first_audio_ms']:.0f} / {h['first_audio_cpu_ms']:.0f}) | ≤ 30 ms | {met(s['first_audio_ms'] <= 30)} |")
    print(f"| RTF, student vs hibari alternating in one process, {s['sentences']} held-out sentences, "
          f"{result['threads']} threads | {s['rtf']:.4f} vs {h['rtf']:.4f} wall; {s['cpu_rtf']:.4f} vs "
          f"{h['cpu_rtf']:.4f} CPU | ≤ hibari's | {met(s['rtf'] <= h['rtf'] and s['cpu_rtf'] <= h['cpu_rtf'])} |")
    for r in route["formats"]:
        walls = [r[k + "_x"] for k in ("tts_stream", "tts_whole", "openai")]
        cpus = [r[k + "_cpu_x"] for k in ("tts_stream", "tts_whole", "openai")]
        print(f"| a request / the model, {r['format']}: /tts streamed, /tts whole, /v1/audio/speech, wall (CPU) "
              f"| " + " / ".join(f"{w:.2f}× ({c:.2f}×)" for w, c in zip(walls, cpus))
              + f" | ≤ 1.3× | {met(max(walls) <= 1.3)} |")
    print(f"\nRequests: {route['audio_s']} s of speech in one sentence, a real uvicorn in the process, medians of "
          f"{route['repeats']} (request, model) pairs. The model alone: {1000 * route['model_s']:.0f} ms wall, "
          f"{1000 * route['model_cpu_s']:.0f} ms CPU. Encoding that audio once, CPU ms: " + ", ".join(
              f"{k} {v}" for k, v in encoders.items() if k != "audio_s"))
    print(f"{result['machine']}, {result['date']}, nice {result['nice']}, load average "
          f"{result['load_average_before'][0]} before / {result['load_average_after'][0]} after; JSON: {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=None, help="only the first N sentences (quick runs)")
    ap.add_argument("--voices", default=None,
                    help=f"comma-separated voice ids; the first is the MCD reference (default {DEFAULT_VOICES}"
                         ",student)")
    ap.add_argument("--student", metavar="CHECKPOINT", default=None,
                    help="the student voice's checkpoint (default: MEDIAFLOW_TTS_STUDENT, else the shipped one)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", choices=sorted(SENTENCE_SETS), default=None,
                    help="the held-out sentences: bench (default) or own (the hand-written second set)")
    ap.add_argument("--out", default=None, help="JSON path (default bench/results/tts.json, tts_own.json for --set own)")
    ap.add_argument("--route", metavar="VOICE", nargs="?", const="student", default=None,
                    help="only measure what a request costs beyond the model, for VOICE (default student), "
                         "writing bench/results/tts_route.json")
    ap.add_argument("--repeats", type=int, default=7, help="requests per format and route in --route (median)")
    ap.add_argument("--lean", action="store_true",
                    help="issue 17's lean-runtime targets in one table (memory, first audio, RTF against hibari, "
                         "a request's cost per format), writing bench/results/tts_lean.json")
    ap.add_argument("--lean-print", metavar="JSON", help=argparse.SUPPRESS)
    ap.add_argument("--lean-rss-worker", metavar="VOICE", help=argparse.SUPPRESS)
    ap.add_argument("--lean-speed-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--lean-encoder-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--worker", metavar="VOICE", help=argparse.SUPPRESS)
    ap.add_argument("--route-worker", metavar="VOICE", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.set:  # the workers inherit it
        os.environ[SET_ENV] = args.set
    args.out = args.out or str(RESULTS / f"tts{_suffix()}.json")
    if args.student:  # the synthesis workers inherit it
        os.environ["MEDIAFLOW_TTS_STUDENT"] = str(Path(args.student).resolve())
    if args.worker:
        print(json.dumps(synth_worker(args.worker, args.limit, args.threads)))
        return
    if args.route_worker:
        print(json.dumps(route_worker(args.route_worker, args.repeats, args.threads)))
        return
    if args.lean_rss_worker:
        print(json.dumps(lean_rss_worker(args.lean_rss_worker, args.threads)))
        return
    if args.lean_speed_worker:
        print(json.dumps(lean_speed_worker(args.threads, args.limit or 40, args.repeats)))
        return
    if args.lean_encoder_worker:
        print(json.dumps(lean_encoder_costs(args.repeats)))
        return
    if args.lean_print:
        print_lean(json.loads(Path(args.lean_print).read_text()), Path(args.lean_print))
        return
    if args.lean:
        lean_report(args.repeats, args.threads, RESULTS / "tts_lean.json")
        return
    if args.route:
        route_report(args.route, args.repeats, args.threads, RESULTS / "tts_route.json")
        return

    import jiwer
    import numpy as np

    if args.voices is None:
        from mediaflow.tts.voices import student_checkpoint

        args.voices = DEFAULT_VOICES + (",student" if student_checkpoint().is_file() else "")
    voice_ids = [v for v in args.voices.split(",") if v]
    texts = load_sentences(args.limit)
    load_before = os.getloadavg()
    started = time.perf_counter()
    synth = {}
    for v in voice_ids:
        synth[v] = run_synth(v, args.limit, args.threads)
        print(f"{v}: synthesised {len(texts)} sentences", file=sys.stderr)
    heard = transcribe_all(voice_ids, len(texts), args.threads)
    print("transcribed", file=sys.stderr)
    reference = voice_ids[0]
    refs = [words(t) for t in texts]
    rows = []
    for v in voice_ids:
        s = synth[v]
        hyps = [words(h) for h in heard[v]]
        mcds = [mcd(audio_dir() / reference / f"{i:03d}.wav", audio_dir() / v / f"{i:03d}.wav") for i in range(len(texts))] \
            if v != reference else []
        for row, hyp, text in zip(s["sentences"], heard[v], texts):
            row.update(text=text, heard=hyp, wer=round(jiwer.wer(words(text), words(hyp)), 4))
        for row, d in zip(s["sentences"], mcds):
            row["mcd_db"] = round(d, 3)
        rows.append({
            "voice": v, "parameters": s["parameters"], "size_bytes": s["size_bytes"], "sample_rate": s["sample_rate"],
            "rtf_median": round(statistics.median(r["rtf"] for r in s["sentences"]), 4),
            "cpu_rtf_median": round(statistics.median(r["cpu_rtf"] for r in s["sentences"]), 4),
            "first_audio_s": s["first_audio_s"], "peak_rss_mb": s["peak_rss_mb"], "load_s": s["load_s"],
            "wer": round(jiwer.wer(refs, hyps), 4),
            "mcd_db": round(float(np.mean(mcds)), 3) if mcds else None,
            "audio_s_total": round(sum(r["audio_s"] for r in s["sentences"]), 1), "license": s["license"],
            "sentences": s["sentences"],
        })
    summary = {
        "command": "bench/tts.py " + " ".join(sys.argv[1:]), "sentences": len(texts), "threads": args.threads,
        "cpu_cores": os.cpu_count(), "machine": machine(), "date": time.strftime("%Y-%m-%d"),
        "mcd_reference": reference, "asr": "whisper tiny.en (bundled), int8",
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "wall_s": round(time.perf_counter() - started, 1), "voices": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2, ensure_ascii=False))

    print(f"| voice | params | on disk | RTF (median, {args.threads} threads) | CPU s per audio s "
          f"| first audio, 20 words | peak RSS | WER (Whisper tiny.en) | MCD vs {reference} |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['voice']} | {fmt_params(r['parameters'])} | {fmt_bytes(r['size_bytes'])} | {r['rtf_median']:.3f} "
              f"| {r['cpu_rtf_median']:.3f} "
              f"| {r['first_audio_s']:.2f} s | {r['peak_rss_mb']} MB | {100 * r['wer']:.1f}% "
              f"| {'–' if r['mcd_db'] is None else format(r['mcd_db'], '.2f') + ' dB'} |")
    print(f"\n{len(texts)} sentences on {summary['machine']}, {summary['date']}, load average "
          f"{summary['load_average_before'][0]} before / {summary['load_average_after'][0]} after; JSON: {args.out}")


if __name__ == "__main__":
    main()
