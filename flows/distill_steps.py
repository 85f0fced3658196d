"""Distilling the Kokoro teacher into the small student voice (`models/tts_student`), step by step.

    write_corpus(data_dir)                 # 1. sentences from three sources (corpus.py), both held-out sets out
    synthesize(data_dir, part=0, parts=2)  # 2. the teacher speaks them, shard by shard in turn in each of
                                           #    `voices`: ids, durations, audio (resumable shards)
    features(data_dir)                     # 3. log-mel targets (torchaudio)
    train(data_dir, preset="cpu")          # 4. acoustic model + vocoder (models/tts_student/train.py)
    evaluate(checkpoint, sentence_set=s)   # 5. the yardstick (bench/tts.py) on each held-out set
    better_on_both(new, shipped)           #    ... and whether it beats the shipped student on both
    register(checkpoint, scores=scores)    # 6. ship it where the voice registry looks, with its model card
    write_samples()                        # 7. teacher, student and hibari side by side in docs/samples/

Sequence-level knowledge distillation: the student learns from what the teacher *said* (its audio
and per-phoneme durations), never from human recordings. Every step skips work already on disk, so
an interrupted run picks up where it stopped. `flows/distill.py` is the Prefect shell over these;
`python -m flows.distill_steps corpus|synth|samples` runs one by hand. They live here, beside the
flow, because they reach the benchmark, the docs and the student's training code, which the library
(`mediaflow/`) never does; the corpus generator itself is the student's (`models/tts_student/corpus.py`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from mediaflow.audio import atomic_copy, atomic_write_bytes
from mediaflow.errors import DependencyMissing, InvalidInput, ModelUnavailable
from models.tts_student import corpus, data

ROOT = Path(__file__).resolve().parents[1]
BENCH_SENTENCES = ROOT / "bench" / "tts_sentences.txt"
OWN_SENTENCES = ROOT / "bench" / "tts_sentences_own.txt"  # the second held-out set, written by hand
SHIPPED = ROOT / "models" / "tts_student" / "student.pt"
MODEL_CARD = ROOT / "docs" / "student.md"
SAMPLES = ROOT / "docs" / "samples"
SHARD_SIZE = 40  # sentences per shard: a lost shard costs a few minutes of one core's teacher time
# The teacher's voices the student learns, female and male; shard k is spoken by VOICES[k % len(VOICES)].
VOICES = ("af_heart", "am_michael")


def default_data_dir() -> Path:
    return Path(os.environ.get("MEDIAFLOW_DISTILL_DIR", ROOT / "data" / "distill"))


def held_out() -> list[str]:
    """Both held-out sets (the benchmark's sentences and our hand-written ones): never trained on."""
    return read_sentences(BENCH_SENTENCES) + read_sentences(OWN_SENTENCES)


def read_sentences(path: Path) -> list[str]:
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


# -- 1. corpus --------------------------------------------------------------------------------------
def write_corpus(data_dir: str | Path | None = None, n: int = 12_000, seed: int = 0, version: int = 2) -> Path:
    """corpus.txt: `n` sentences (~12 h of teacher speech for 12,000), one a line; kept as is when it
    already exists."""
    path = Path(data_dir or default_data_dir()) / "corpus.txt"
    if path.is_file():
        return path
    lines = corpus.generate(n, seed, held_out(), version=version)
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
    return path


def read_corpus(data_dir: str | Path | None = None) -> list[str]:
    path = Path(data_dir or default_data_dir()) / "corpus.txt"
    if not path.is_file():
        raise InvalidInput(f"no corpus at {path}: run write_corpus first")
    return [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


# -- 2. teacher synthesis -----------------------------------------------------------------------------
def shard_path(data_dir: Path, k: int) -> Path:
    return data_dir / "shards" / f"{k:04d}.npz"


def synthesize(
    data_dir: str | Path | None = None, part: int = 0, parts: int = 1, threads: int = 1,
    voices: tuple[str, ...] = VOICES, log=print,
) -> int:
    """Have the teacher speak shard k for every k ≡ part (mod parts) that is not on disk yet, in
    voice `voices[k % len(voices)]`.

    Run `parts` processes side by side with one thread each (better throughput than one process with
    several). Each shard is one .npz written atomically: an interruption loses at most one shard.
    The teacher costs about 1.9 CPU-seconds per second of speech here (its vocoder), so 12 h of speech
    is ~23 CPU-hours: run it where there are cores. Returns the number of shards written.
    """
    from mediaflow.tts.kokoro import KokoroTeacher  # onnxruntime: loaded by the steps that speak

    data_dir = Path(data_dir or default_data_dir())
    lines = read_corpus(data_dir)
    teachers: dict[str, KokoroTeacher] = {}
    n_shards = (len(lines) + SHARD_SIZE - 1) // SHARD_SIZE
    written = 0
    for k in range(part, n_shards, parts):
        path = shard_path(data_dir, k)
        if path.is_file():
            continue
        voice = voices[k % len(voices)]
        if voice not in teachers:
            teachers[voice] = KokoroTeacher(voice, threads=threads)
        teacher = teachers[voice]
        t0 = time.perf_counter()
        items = []
        for text in lines[k * SHARD_SIZE: (k + 1) * SHARD_SIZE]:
            items.extend(teacher.synthesize_with_alignment(text))
        atomic_write_bytes(path, data.write_shard([
            {"text": a.text, "phonemes": a.phonemes, "ids": a.ids, "durations": a.durations, "audio": a.audio,
             "voice": voice} for a in items]))
        written += 1
        seconds = sum(a.seconds for a in items)
        log(f"shard {k}/{n_shards} ({voice}): {len(items)} utterances, {seconds:.0f} s audio in {time.perf_counter() - t0:.0f} s")
    return written


def shards(data_dir: str | Path | None = None) -> list[Path]:
    return sorted((Path(data_dir or default_data_dir()) / "shards").glob("*.npz"))


def progress(data_dir: str | Path | None = None) -> dict:
    """How far the teacher has got: shards written of those the corpus needs, and hours of speech per voice."""
    data_dir = Path(data_dir or default_data_dir())
    needed = -(-len(read_corpus(data_dir)) // SHARD_SIZE)
    hours: dict[str, float] = {}
    written = shards(data_dir)
    for path in written:
        with np.load(path) as z:
            voice = str(z["voice"][0]) if "voice" in z.files else data.DEFAULT_VOICE
            hours[voice] = hours.get(voice, 0.0) + float(z["n_audio"].sum()) / data.MelConfig.sample_rate / 3600
    done = len(written)
    return {"shards": done, "of": needed, "hours": {v: round(h, 3) for v, h in sorted(hours.items())},
            "total_hours": round(sum(hours.values()), 3),
            "estimated_total_hours": round(sum(hours.values()) * needed / done, 3) if done else None}


# -- 3. features --------------------------------------------------------------------------------------
def features(data_dir: str | Path | None = None) -> int:
    """Log-mel targets (torchaudio, 80 bands, hop 300) for every shard, in mels/; returns how many shards."""
    paths = shards(data_dir)
    if not paths:
        raise InvalidInput(f"no teacher shards under {Path(data_dir or default_data_dir()) / 'shards'}: synthesize first")
    logmel = data.LogMel()
    for path in paths:
        data.write_mels(path, logmel)
    return len(paths)


# -- 4. training ----------------------------------------------------------------------------------------
def train(
    data_dir: str | Path | None = None, preset: str = "cpu", out_dir: str | Path | None = None,
    overrides: dict | None = None, parallel: bool | None = None, log=print,
) -> Path:
    """Train with `models/tts_student/train.py`, resuming any run in `out_dir`; returns its student.pt.

    On a CPU the acoustic model trains beside the vocoder, one process and thread each (two small
    processes use two cores better than one with two threads); the vocoder then fine-tunes on the
    acoustic model's latest snapshot, and the result is exported. Otherwise (CUDA, or parallel=False)
    all of it runs in one process.
    `overrides` are the trainer's own settings ({"ac_steps": 100, ...}).
    """
    data_dir = Path(data_dir or default_data_dir())
    out_dir = Path(out_dir or data_dir / f"run-{preset}")
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [f"--preset={preset}", f"--data_dir={data_dir}", f"--out_dir={out_dir}"]
    args += [f"--{k}={v}" for k, v in (overrides or {}).items()]
    parallel = preset == "cpu" if parallel is None else parallel
    stages = [["acoustic", "vocoder,gta"], ["export"]] if parallel else [["all"]]
    for stage in stages:
        procs = [(part, _trainer(args, part, out_dir, log)) for part in stage]
        for part, proc in procs:
            if proc.wait() != 0:
                tail = (out_dir / f"{part.replace(',', '+')}.log").read_text(errors="replace").strip().splitlines()[-5:]
                raise ModelUnavailable(f"training the student ({part}) failed: {' | '.join(tail)}")
    return out_dir / "student.pt"


def _trainer(args: list[str], part: str, out_dir: Path, log) -> subprocess.Popen:
    logfile = out_dir / f"{part.replace(',', '+')}.log"
    log(f"student training, {part}: log in {logfile}")
    cmd = [sys.executable, "-m", "models.tts_student.train", *args, f"--part={part}"]
    with logfile.open("a") as f:
        return subprocess.Popen(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)


# -- 5. evaluation ---------------------------------------------------------------------------------------
HELD_OUT_SETS = ("bench", "own")  # bench/tts.py --set: the benchmark's sentences, our hand-written ones


def evaluate(checkpoint: str | Path, limit: int | None = None, voices: str = "teacher,student,hibari",
             out: str | Path | None = None, sentence_set: str = "bench") -> dict:
    """The yardstick (`bench/tts.py`) with `checkpoint` as the student, on one held-out set; returns
    {voice: row without sentences}."""
    if out is None:  # beside a trained checkpoint; the shipped one's in bench/results, not in the package
        shipped = Path(checkpoint).resolve() == SHIPPED.resolve()
        out = (ROOT / "bench" / "results" / f"tts-shipped-{sentence_set}.json" if shipped
               else Path(checkpoint).with_name(f"bench-{sentence_set}.json"))
    out = Path(out)
    cmd = [sys.executable, str(ROOT / "bench" / "tts.py"), "--voices", voices, "--out", str(out),
           "--set", sentence_set]
    if limit:
        cmd += ["--limit", str(limit)]
    env = {**os.environ, "MEDIAFLOW_TTS_STUDENT": str(Path(checkpoint).resolve())}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ModelUnavailable(f"the benchmark failed: {proc.stderr.strip()[-800:]}")
    rows = json.loads(out.read_text())["voices"]
    return {r["voice"]: {k: v for k, v in r.items() if k != "sentences"} for r in rows}


def better_on_both(new: dict, old: dict | None) -> tuple[bool, str]:
    """Whether a new student replaces the shipped one: on every held-out set its Whisper WER is no higher
    and its MCD against the teacher lower. `new`, `old`: {set: the student's row from `evaluate`};
    no shipped student (`old` None) means yes. Returns the answer and why, in words."""
    if old is None:
        return True, "no student is shipped yet"
    worse = []
    for name in HELD_OUT_SETS:
        n, o = new[name], old[name]
        if n["wer"] > o["wer"]:
            worse.append(f"{name}: WER {n['wer']:.2%} > {o['wer']:.2%}")
        if n["mcd_db"] >= o["mcd_db"]:
            worse.append(f"{name}: MCD {n['mcd_db']:.2f} dB >= {o['mcd_db']:.2f} dB")
    return (not worse, "; ".join(worse) or "better on both held-out sets")


# -- 6. registration --------------------------------------------------------------------------------------
def register(checkpoint: str | Path, target: str | Path = SHIPPED, scores: dict | None = None,
             card: str | Path | None = MODEL_CARD) -> Path:
    """Check that `checkpoint` loads as a student, copy it to where the voice registry looks, export its
    ONNX graphs beside the copy, and write its model card (`scores`: what `evaluate` returned) beside the docs."""
    try:
        from models.tts_student import CheckpointError, load_voice
    except ImportError as exc:
        raise DependencyMissing(f"registering a student needs PyTorch: {exc}") from exc
    try:
        voice = load_voice(checkpoint)
    except CheckpointError as exc:
        raise ModelUnavailable(f"not registering the student: {exc}") from exc
    path = atomic_copy(checkpoint, target)
    # the voice serves from ONNX graphs made from this very checkpoint; stale ones would send it back to PyTorch
    from models.tts_student.export import export_onnx

    export_onnx(Path(path))
    if card:
        written = model_card(voice, Path(path), scores)
        old = Path(card).read_text(encoding="utf-8") if Path(card).is_file() else ""
        atomic_write_bytes(card, (written + kept_sections(old, written)).encode())
    return path


def kept_sections(old_card: str, written: str) -> str:
    """The `## ` sections of an existing card that the card writer does not make (serving, captions, notes
    written by hand), so registering a new student keeps them after the generated part."""
    made = {ln for ln in written.splitlines() if ln.startswith("## ")} | {MEASURED}  # never an old student's scores
    sections, current = [], None
    for line in old_card.splitlines():
        if line.startswith("## "):
            current = [] if line in made else [line]
            sections.append(current)
        elif current:
            current.append(line)
    kept = "\n".join("\n".join(sec).rstrip("\n") for sec in sections if sec)
    return "\n" + kept + "\n" if kept else ""


# -- 7. model card and samples ------------------------------------------------------------------------------
MEASURED = "## Measured (`bench/tts.py`, held-out sentences)"


def model_card(voice, path: Path, scores: dict | None = None) -> str:
    """Markdown: what the student is, what it learned from, how training went, what it measures.
    Paths are the repository's or the data dir's own names, never where the training machine kept them."""
    meta = voice.meta
    settings, trained_on = meta.get("train_settings", {}), meta.get("data", {})
    learned = voice.voices
    taught = (f"`{learned[0]}` voice" if len(learned) == 1 else
              " and ".join(f"`{v}`" for v in learned) + " voices (one learned speaker vector each)")
    lines = [
        "# The TTS student: model card", "",
        f"`{path.name}`: {voice.parameters / 1e6:.2f} M parameters (acoustic model and vocoder), "
        f"{path.stat().st_size / 1e6:.1f} MB on disk ({meta.get('dtype', settings.get('export_dtype', '?'))}), "
        f"exported {meta.get('exported', '?')}. Licence: Apache-2.0, as the teacher whose speech it "
        "learned from.", "",
        "A FastSpeech-2-style transformer acoustic model (phoneme encoder, duration predictor, length "
        "regulator, decoder) and a Vocos-style iSTFT vocoder (`models/tts_student/`), distilled from the "
        f"Kokoro-82M teacher's {taught} by sequence-level knowledge distillation: it learned only "
        "from what the teacher said (its audio and per-phoneme durations), never from human recordings.", "",
        "## Data", "",
        f"- {trained_on.get('train_utterances', '?')} teacher utterances for training and "
        f"{trained_on.get('val_utterances', '?')} for validation, {trained_on.get('train_hours', '?')} h of "
        "training audio, "
        f"in {_data_dir_name(settings.get('data_dir', meta.get('data_dir')))}: `corpus.txt`, generated sentences "
        "with the benchmark's held out (`models/tts_student/corpus.py`), and `shards/`, what the teacher said.",
        f"- preset `{settings.get('preset', '?')}`, device `{settings.get('device', '?')}`, "
        f"{settings.get('threads', '?')} thread(s) per part"
        + (f"; warm-started from `{Path(settings['init_from']).name}` (its weights wherever they fit, a new "
           "speaker table at zero)." if settings.get("init_from") else "."), "",
        "## Training", "",
        "| part | steps | minutes | final validation loss |", "|---|---|---|---|",
    ]
    for part in ("acoustic", "vocoder", "gta"):
        hist = meta.get(f"{part}_history") or []
        val = next((r["val"] for r in reversed(hist) if "val" in r), None)
        lines.append(f"| {part} | {meta.get(f'{part}_steps', 0)} | {meta.get(f'{part}_minutes', 0)} | "
                     f"{', '.join(f'{k} {v:.4f}' for k, v in (val or {}).items()) or '–'} |")
    lines += ["", "Loss curve (validation, acoustic model):", "", "| step | minutes | mel L1 | log-duration MSE |",
              "|---|---|---|---|"]
    rows = [r for r in meta.get("acoustic_history") or [] if "val" in r]
    picked = rows[:: max(1, len(rows) // 12)]
    for r in picked + [r for r in rows[-1:] if r is not picked[-1]]:
        v = r["val"]
        lines.append(f"| {r['step']} | {r['minutes']} | {v.get('mel_l1', float('nan')):.4f} | "
                     f"{v.get('dur', float('nan')):.4f} |")
    if scores:
        # {voice: row} for the benchmark's sentences, or {held-out set: {voice: row}} for several
        by_set = scores if set(scores) <= set(HELD_OUT_SETS) else {"bench": scores}
        lines += ["", MEASURED, "",
                  "| held-out set | voice | params | RTF (median) | first audio, 20 words | WER | MCD vs its teacher |",
                  "|---|---|---|---|---|---|---|"]
        for set_name, rows in by_set.items():
            for name, row in rows.items():
                lines.append(
                    f"| {set_name} | {name} | {_fmt(row.get('parameters'), 1e6, ' M')} | {_fmt(row.get('rtf_median'))} | "
                    f"{_fmt(row.get('first_audio_s'), 1, ' s')} | {_fmt(row.get('wer'), 0.01, ' %')} | "
                    f"{_fmt(row.get('mcd_db'), 1, ' dB')} |")
    return "\n".join(lines) + "\n"


def _data_dir_name(path: str | None) -> str:
    """The data dir as the card names it: its path in the repository, or the distillation data dir's name."""
    if path and not Path(path).is_absolute():
        return f"`{path}`"
    if path and Path(path).resolve().is_relative_to(ROOT):
        return f"`{Path(path).resolve().relative_to(ROOT)}`"
    return "the distillation data dir (`MEDIAFLOW_DISTILL_DIR`, by default `data/distill`)"


def _fmt(value, unit: float = 1.0, suffix: str = "") -> str:
    return "–" if value is None else f"{value / unit:.3g}{suffix}"


SAMPLE_TEXTS = (  # three held-out benchmark sentences: what the student never heard in training
    "Because you listened to The History Hour, try Deep Time: it gets into volcanoes and ancient oceans.",
    "Try Ep. #12: AI/ML & You, a beginner-friendly look at machine learning.",
    "Since you like history, try Ep. 101: The Fall of Constantinople, 1453.",
)


def write_samples(out_dir: str | Path = SAMPLES, voice_ids=None, texts=SAMPLE_TEXTS) -> list[Path]:
    """{voice}-{n}.wav (16-bit mono) for each voice and text, for listening side by side; by default the
    teacher, the student and hibari, and the male teacher beside the male student once it is learned."""
    from mediaflow.audio import encode
    from mediaflow.tts.voices import REGISTRY, get_voice

    if voice_ids is None:
        voice_ids = ("teacher", "student", "hibari") + (
            ("kokoro-michael", "student-male") if REGISTRY["student-male"].available() else ())
    paths = []
    for voice_id in voice_ids:
        voice = get_voice(voice_id, threads=2)
        for n, text in enumerate(texts, 1):
            path = Path(out_dir) / f"{voice_id}-{n}.wav"
            atomic_write_bytes(path, encode(voice.synthesize(text), voice.sample_rate, "wav"))
            paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    """`python -m flows.distill_steps corpus|synth|status|features|train|samples`: steps run by hand.

    `train --preset cpu --set ac_minutes=60 --set ...` passes trainer settings through (models/tts_student/train.py).
    """
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("step", choices=["corpus", "synth", "status", "features", "train", "samples"])
    ap.add_argument("--data", default=None)
    ap.add_argument("--part", type=int, default=0)
    ap.add_argument("--parts", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--preset", default="cpu", choices=["cpu", "cuda", "tiny"])
    ap.add_argument("--out", default=None, help="the training run's folder (default: DATA/run-PRESET)")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="a trainer setting (repeatable)")
    args = ap.parse_args(argv)
    if args.step == "corpus":
        print(write_corpus(args.data))
    elif args.step == "status":
        print(json.dumps(progress(args.data)))
    elif args.step == "features":
        print(features(args.data), "shards with mels")
    elif args.step == "train":
        overrides = dict(kv.split("=", 1) for kv in args.set)
        print(train(args.data, args.preset, args.out, overrides=overrides, log=lambda m: print(m, flush=True)))
    elif args.step == "samples":
        print("\n".join(str(p) for p in write_samples()))
    else:
        synthesize(args.data, args.part, args.parts, args.threads, log=lambda m: print(m, flush=True))


if __name__ == "__main__":
    main()
