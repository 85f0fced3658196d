"""Chapter benchmark on real creator-chaptered episodes (../shared/eval/chapters/dev).

    .venv/bin/python bench/chapters.py [--source crash_course_psych,huberman_lab] [--penalty P ...]

Per source and overall: WindowDiff and Pk (sentence units), boundary F1 within ±15 s and ±30 s
(Crash Course, whose caption times are known), predicted vs true chapter count, title ROUGE-L
against the creator title of the best-overlapping true chapter, and CPU seconds per hour of
transcript. Baselines in the same run: an even split into the true number of chapters, and
TextTiling-style lexical cohesion.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mediaflow.chapters import ChapterOptions, chapterize_sentences  # noqa: E402
from mediaflow.chapters.sentences import Sentence, _from_text, from_transcript  # noqa: E402
from mediaflow.transcript import Segment, Transcript  # noqa: E402

WPM = 160.0  # Huberman text has no times inside chapters: pace it evenly at the episode's own rate


# -- loading ---------------------------------------------------------------------------------------
def load_crash_course(path: Path) -> dict:
    d = json.loads(path.read_text())
    lines = d["caption_lines"]
    segs = []
    for i, ln in enumerate(lines):
        end = lines[i + 1]["start"] if i + 1 < len(lines) else d["duration_seconds"]
        segs.append(Segment(i, float(ln["start"]), float(max(end, ln["start"] + 0.5)), ln["text"]))
    sents = from_transcript(Transcript(segs, "en", float(d["duration_seconds"]), "captions"))
    starts = np.array([s.start for s in sents])
    ref = sorted({int(np.argmin(np.abs(starts - c["start"]))) for c in d["chapters"]} | {0})
    return {"source": "crash_course_psych", "id": d["video_id"], "title": d["title"], "sentences": sents,
            "duration": float(d["duration_seconds"]), "ref": ref, "ref_times": [c["start"] for c in d["chapters"]],
            "ref_titles": [c["title"] for c in d["chapters"]], "timed": True}


def load_huberman(path: Path) -> dict:
    d = json.loads(path.read_text())
    chapters = d["chapters"]
    n_words = sum(len(p.split()) for c in chapters for p in c["paragraphs"])
    # the episode's own pace: words before the last chapter over its start time
    before_last = sum(len(p.split()) for c in chapters[:-1] for p in c["paragraphs"])
    rate = before_last / chapters[-1]["start"] if chapters[-1]["start"] > 0 else WPM / 60
    sents: list[Sentence] = []
    ref, words_so_far = [], 0
    for c in chapters:
        ref.append(len(sents))
        for p in c["paragraphs"]:
            for s in _from_text(0.0, 1.0, p):
                n = len(s.text.split())
                sents.append(Sentence(words_so_far / rate, (words_so_far + n) / rate, s.text))
                words_so_far += n
    return {"source": "huberman_lab", "id": str(d["episode"]), "title": d["title"], "sentences": sents,
            "duration": n_words / rate, "ref": sorted(set(ref)), "ref_times": None,
            "ref_titles": [c["title"] for c in chapters], "timed": False}


# -- metrics ---------------------------------------------------------------------------------------
def _seg_ids(cuts: list[int], n: int) -> np.ndarray:
    ids = np.zeros(n, dtype=int)
    for c in cuts[1:]:
        ids[c:] += 1
    return ids


def pk_windowdiff(ref: list[int], hyp: list[int], n: int) -> tuple[float, float]:
    r, h = _seg_ids(ref, n), _seg_ids(hyp, n)
    k = max(2, int(round(n / (2 * max(len(ref), 1)))))
    if n <= k:
        return 0.0, 0.0
    pk = np.mean((r[k:] == r[:-k]) != (h[k:] == h[:-k]))
    wd = np.mean((r[k:] - r[:-k]) != (h[k:] - h[:-k]))
    return float(pk), float(wd)


def boundary_f1(ref_t: list[float], hyp_t: list[float], tol: float) -> float:
    ref_t = [t for t in ref_t if t > 0]
    hyp_t = [t for t in hyp_t if t > 0]
    if not ref_t and not hyp_t:
        return 1.0
    used, hits = set(), 0
    for t in hyp_t:
        best = min((abs(t - r), i) for i, r in enumerate(ref_t) if i not in used) if len(used) < len(ref_t) else None
        if best and best[0] <= tol:
            used.add(best[1])
            hits += 1
    p = hits / len(hyp_t) if hyp_t else 0.0
    r = hits / len(ref_t) if ref_t else 0.0
    return 2 * p * r / (p + r) if p + r else 0.0


def title_rouge(ep: dict, hyp: list[int], titles: list[str], scorer) -> float:
    n = len(ep["sentences"])
    ref_spans = list(zip(ep["ref"], ep["ref"][1:] + [n]))
    hyp_spans = list(zip(hyp, hyp[1:] + [n]))
    scores = []
    for (a, b), t in zip(hyp_spans, titles):
        overlaps = [max(0, min(b, d) - max(a, c)) for c, d in ref_spans]
        true = ep["ref_titles"][int(np.argmax(overlaps))]
        scores.append(scorer.score(true, t)["rougeL"].fmeasure)
    return float(np.mean(scores)) if scores else 0.0


# -- baselines -------------------------------------------------------------------------------------
def even_split(n: int, k: int) -> list[int]:
    return sorted({int(round(i * n / k)) for i in range(k)})


_WORD = re.compile(r"[a-z']+")


def texttiling(sents: list[Sentence], block: int = 6) -> list[int]:
    """Lexical cohesion between adjacent blocks of sentences; cut at deep valleys (Hearst 1997)."""
    bags = [Counter(w for w in _WORD.findall(s.text.lower()) if len(w) > 3) for s in sents]
    n = len(sents)
    if n < 2 * block:
        return [0]
    sims = []
    for g in range(1, n):
        left, right = Counter(), Counter()
        for b in bags[max(0, g - block):g]:
            left.update(b)
        for b in bags[g:g + block]:
            right.update(b)
        num = sum(left[w] * right[w] for w in left)
        den = math.sqrt(sum(v * v for v in left.values()) * sum(v * v for v in right.values())) or 1.0
        sims.append(num / den)
    sims = np.array(sims)
    depth = np.zeros_like(sims)
    for i in range(len(sims)):
        # the nearest peaks on each side, as TextTiling does
        lo = i
        while lo > 0 and sims[lo - 1] >= sims[lo]:
            lo -= 1
        hi = i
        while hi < len(sims) - 1 and sims[hi + 1] >= sims[hi]:
            hi += 1
        depth[i] = (sims[lo] - sims[i]) + (sims[hi] - sims[i])
    thr = depth.mean() + 0.5 * depth.std()
    cuts = [0]
    for i in np.argsort(-depth):
        if depth[i] < thr:
            break
        g = i + 1
        if all(abs(g - c) >= block for c in cuts):
            cuts.append(g)
    return sorted(cuts)


# -- run -------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--eval", default=str(ROOT.parent / "shared" / "eval" / "chapters" / "dev"))
    ap.add_argument("--source", default="crash_course_psych,huberman_lab")
    ap.add_argument("--limit", type=int, default=0, help="episodes per source (0 = all)")
    ap.add_argument("--penalty", type=float)
    ap.add_argument("--prior-weight", type=float)
    ap.add_argument("--cue-weight", type=float)
    ap.add_argument("--length-scale", type=float)
    ap.add_argument("--smooth", type=int)
    ap.add_argument("--no-context", action="store_true", help="ignore the episode title")
    ap.add_argument("--cues", choices=("loo", "shipped", "off"), default="loo",
                    help="opening-cue table: refit without the scored episode (honest on dev), the shipped one, or none")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads: 1 measures CPU seconds without thread spin on a shared machine")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "chapters.json"))
    args = ap.parse_args()

    root = Path(args.eval)
    if not root.is_dir():
        sys.exit(f"{root} not found: the chapter benchmark needs ../shared/eval (not shipped with the project)")
    from rouge_score import rouge_scorer

    from mediaflow.embed import get_embedder

    import os

    import torch

    torch.set_num_threads(args.threads)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    opts = ChapterOptions()
    seg = opts.segment
    for name in ("penalty", "prior_weight", "cue_weight", "length_scale", "smooth"):
        v = getattr(args, name)
        if v is not None:
            seg = replace(seg, **{name: v})
    opts = replace(opts, segment=seg)
    load = os.getloadavg()
    embedder = get_embedder()
    embedder.encode(["warm up"])

    episodes = []
    for source in args.source.split(","):
        loader = load_crash_course if source == "crash_course_psych" else load_huberman
        files = sorted((root / source).glob("*.json"))
        episodes += [loader(f) for f in (files[: args.limit] if args.limit else files)]

    from fit_chapter_cues import fit_table

    from mediaflow.chapters.cues import cue_scores

    rows = []
    for ep in episodes:
        sents, n = ep["sentences"], len(ep["sentences"])
        cues = None
        if args.cues == "loo":
            cues = cue_scores([s.text for s in sents], fit_table(episodes, exclude=ep))
        elif args.cues == "off":
            cues = np.zeros(n)
        t0 = time.process_time()
        chapters = chapterize_sentences(sents, ep["duration"], title=None if args.no_context else ep["title"],
                                        embedder=embedder, options=opts, cues=cues)
        cpu = time.process_time() - t0
        starts = np.array([s.start for s in sents])
        hyp = [0] + [int(np.argmin(np.abs(starts - c.start))) for c in chapters[1:]]
        hyp = sorted(set(hyp))
        pk, wd = pk_windowdiff(ep["ref"], hyp, n)
        even = even_split(n, len(ep["ref"]))
        tt = texttiling(sents)
        row = {
            "source": ep["source"], "id": ep["id"], "sentences": n, "hours": ep["duration"] / 3600,
            "n_true": len(ep["ref"]), "n_pred": len(chapters), "pk": pk, "windowdiff": wd,
            "title_rougeL": title_rouge(ep, hyp, [c.title for c in chapters], scorer),
            "cpu_s_per_hour": cpu / (ep["duration"] / 3600),
            "even_pk": pk_windowdiff(ep["ref"], even, n)[0], "even_windowdiff": pk_windowdiff(ep["ref"], even, n)[1],
            "texttiling_pk": pk_windowdiff(ep["ref"], tt, n)[0],
            "texttiling_windowdiff": pk_windowdiff(ep["ref"], tt, n)[1],
            "titles": [c.title for c in chapters],
            "max_title_len": max(len(c.title) for c in chapters),
        }
        if ep["timed"]:
            pred_t = [c.start for c in chapters]
            row["f1_15s"] = boundary_f1(ep["ref_times"], pred_t, 15)
            row["f1_30s"] = boundary_f1(ep["ref_times"], pred_t, 30)
            row["even_f1_30s"] = boundary_f1(ep["ref_times"], [starts[i] for i in even], 30)
            row["texttiling_f1_30s"] = boundary_f1(ep["ref_times"], [starts[i] for i in tt], 30)
        rows.append(row)

    metrics = ["windowdiff", "pk", "f1_15s", "f1_30s", "n_true", "n_pred", "title_rougeL", "cpu_s_per_hour",
               "even_windowdiff", "even_pk", "even_f1_30s", "texttiling_windowdiff", "texttiling_pk",
               "texttiling_f1_30s"]
    groups = {s: [r for r in rows if r["source"] == s] for s in dict.fromkeys(r["source"] for r in rows)}
    groups["overall"] = rows
    summary = {}
    for g, rs in groups.items():
        summary[g] = {"episodes": len(rs)}
        for m in metrics:
            vals = [r[m] for r in rs if m in r]
            summary[g][m] = round(float(np.mean(vals)), 4) if vals else None
    result = {"load_average_at_start": load, "torch_threads": args.threads, "options": {"segment": vars(opts.segment), "titles": vars(opts.titles),
                          "context": not args.no_context, "cues": args.cues}, "summary": summary, "episodes": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, default=float))

    print("| metric | " + " | ".join(groups) + " |")
    print("|---|" + "---|" * len(groups))
    for m in metrics:
        print(f"| {m} | " + " | ".join("–" if summary[g][m] is None else f"{summary[g][m]:.3f}" for g in groups) + " |")
    print(f"\nJSON: {args.out}")


if __name__ == "__main__":
    main()
