"""Prefect flow for distilling the TTS student: thin tasks over the steps in `flows/distill_steps.py`.

    python -m flows.distill [--preset cpu|cuda] [--limit N] [--register]

Every step skips what is already on disk (corpus, shards, mels, training checkpoints), so a rerun
after an interruption resumes instead of starting over.
"""

from __future__ import annotations

import argparse

import flows  # noqa: F401  (Prefect's embedded defaults, set before Prefect is imported)
from prefect import flow, get_run_logger, task

from flows import distill_steps as steps


@task
def write_corpus(data_dir: str, n: int) -> str:
    return str(steps.write_corpus(data_dir, n))


@task
def synthesize(data_dir: str, part: int, parts: int) -> int:
    """The teacher speaks every shard k ≡ part (mod parts); run `parts` of these side by side."""
    return steps.synthesize(data_dir, part, parts, threads=1, log=get_run_logger().info)


@task
def features(data_dir: str) -> int:
    return steps.features(data_dir)


@task
def train(data_dir: str, preset: str) -> str:
    return str(steps.train(data_dir, preset, log=get_run_logger().info))


@task
def evaluate(checkpoint: str, limit: int | None, sentence_set: str, voices: str = "teacher,student,hibari") -> dict:
    return steps.evaluate(checkpoint, limit, voices=voices, sentence_set=sentence_set)


@task
def register(checkpoint: str, scores: dict) -> str:
    """Ship the checkpoint and write its model card (docs/student.md) with the measured numbers."""
    return str(steps.register(checkpoint, scores=scores))


@flow(name="distill-tts-student")
def distill_student(data_dir: str | None = None, preset: str = "cpu", sentences: int = 12_000,
                    synth_workers: int = 2, bench_limit: int | None = None, ship: bool = False) -> dict:
    """corpus → teacher synthesis → mel features → training → benchmark on both held-out sets →
    (optionally) registration, only when it beats the shipped student on both."""
    data_dir = str(data_dir or steps.default_data_dir())
    write_corpus(data_dir, sentences)
    futures = [synthesize.submit(data_dir, k, synth_workers) for k in range(synth_workers)]
    for f in futures:
        f.result()
    features(data_dir)
    checkpoint = train(data_dir, preset)
    scores = {s: evaluate(checkpoint, bench_limit, s) for s in steps.HELD_OUT_SETS}
    for s, rows in scores.items():
        get_run_logger().info("student on %s: %s", s, {k: v for k, v in rows.get("student", {}).items() if k != "license"})
    if ship:
        shipped = None
        if steps.SHIPPED.is_file():  # measured in the same way, now, on this machine
            shipped = {s: evaluate(str(steps.SHIPPED), bench_limit, s, "teacher,student")["student"]
                       for s in steps.HELD_OUT_SETS}
        better, why = steps.better_on_both({s: scores[s]["student"] for s in scores}, shipped)
        get_run_logger().info("ship the new student? %s: %s", better, why)
        if better:
            register(checkpoint, scores)
    return {"checkpoint": checkpoint, "bench": scores}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=None)
    ap.add_argument("--preset", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--limit", type=int, default=None, help="benchmark only the first N held-out sentences")
    ap.add_argument("--register", action="store_true", help="ship the result as models/tts_student/student.pt")
    a = ap.parse_args()
    print(distill_student(a.data, a.preset, bench_limit=a.limit, ship=a.register))
