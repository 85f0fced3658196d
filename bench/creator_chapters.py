"""Chapters the creators wrote, as a free evaluation set: every stored episode whose chapters came from its
creator (a description's `00:00 Intro` lines or the feed's `podcast:chapters`) keeps ours beside them, and
this scores ours against theirs.

    .venv/bin/python bench/creator_chapters.py [--data-dir DIR] [--out bench/results/creator_chapters.json]

Scores per episode: the chapter counts, boundary F1 within 5 s and 15 s (start 0 not counted; one-to-one
matching) and title ROUGE-L per creator chapter (against our chapter that overlaps it most in time, words
lower-cased, no stemming, as bench/chapters.py's per-creator convention). A creator's times can be off where
ads were inserted into the audio after they wrote them; episodes whose chapters run past the audio are left
out for that reason.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from chapters import boundary_f1  # noqa: E402  (bench/chapters.py)


def rouge_per_creator(creator: list[dict], ours: list[dict], scorer) -> float:
    scores = []
    for c in creator:
        overlaps = [max(0.0, min(c["end"], o["end"]) - max(c["start"], o["start"])) for o in ours]
        best = max(range(len(ours)), key=overlaps.__getitem__) if ours else None
        ok = best is not None and overlaps[best] > 0
        scores.append(scorer.score(c["title"], ours[best]["title"])["rougeL"].fmeasure if ok else 0.0)
    return sum(scores) / len(scores) if scores else 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", help="a mediaflow data dir (default: the configured one)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "creator_chapters.json"))
    args = ap.parse_args()
    if args.data_dir:
        import os

        os.environ["MEDIAFLOW_DATA_DIR"] = args.data_dir
    from rouge_score import rouge_scorer

    from mediaflow.config import get_settings
    from mediaflow.resources import get_store

    settings = get_settings()
    store = get_store(settings.db_url)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    rows, offset = [], 0
    while True:
        episodes, total = store.list_episodes(limit=200, offset=offset)
        for ep in episodes:
            row = store.chapters_row(ep.id)
            if row is None or not row.generated or not row.data:
                continue
            creator, ours = row.data, row.generated
            duration = ep.duration_s or max(c["end"] for c in ours)
            if max(c["start"] for c in creator) >= duration:
                continue
            rows.append({
                "episode": ep.id, "title": ep.title, "creator_chapters": len(creator), "our_chapters": len(ours),
                "f1_5s": round(boundary_f1([c["start"] for c in creator], [c["start"] for c in ours], 5.0), 3),
                "f1_15s": round(boundary_f1([c["start"] for c in creator], [c["start"] for c in ours], 15.0), 3),
                "rouge_l_per_creator": round(rouge_per_creator(creator, ours, scorer), 3),
            })
        offset += len(episodes)
        if not episodes or offset >= total:
            break
    if not rows:
        sys.exit(f"no episode in {settings.data_path} has chapters from its creator: process a feed whose "
                 "descriptions or podcast:chapters carry them first")
    cols = ["title", "creator_chapters", "our_chapters", "f1_5s", "f1_15s", "rouge_l_per_creator"]
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r[c])[:40] for c in cols))
    mean = {c: round(sum(r[c] for r in rows) / len(rows), 3) for c in ("f1_5s", "f1_15s", "rouge_l_per_creator")}
    print(f"mean over {len(rows)} episodes: {mean}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"episodes": rows, "mean": mean}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
