"""Chapter benchmark on real creator-chaptered episodes (../shared/eval/chapters/dev).

    .venv/bin/python bench/chapters.py [--source crash_course_psych,huberman_lab] [--penalty P ...]
    nice -n 10 .venv/bin/python bench/chapters.py --titles model --limit 2   # + the language model's titles
    nice -n 10 .venv/bin/python bench/chapters.py --titles model --split tune --limit 2   # tune half only
    nice -n 10 .venv/bin/python bench/chapters.py --titles model --boundaries creator   # titles on the creator's cuts

With `--titles model` each episode is also titled (and summarised) by the language model on the same
chapters, so both title columns score the same boundaries; `llm_cpu_s_per_hour` is the CPU the model's
titles, chapter summaries and episode summary cost per hour of audio. Episodes finished are appended to
`<out>.partial.jsonl` as they finish and skipped when the same command runs again (resumable).

Per source and overall: WindowDiff and Pk (sentence units), boundary F1 within ±15 s and ±30 s
(Crash Course, whose caption times are known), predicted vs true chapter count, title ROUGE-L both
ways, and CPU seconds per hour of transcript. Title ROUGE-L per predicted chapter: each predicted
title against the creator title of the creator chapter it overlaps most (in sentences; stemmed), so a
missed creator chapter costs nothing. Per creator chapter: each creator title against the title of the
predicted chapter overlapping it most in time (lower-cased words, no stemming), 0 where none overlaps.
Baselines in the same run: an even split into the true number of chapters, and TextTiling-style
lexical cohesion.

Everything that decides the figures is `METHOD` below: printed first and written into the JSON. The
segmentation and title settings were chosen on dev and the shipped cue table was fit on dev, so the
bench labels its dev figures in-sample; the held-out set is the out-of-sample check.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from chapter_data import DEV, LOADERS, boundary_f1, load, pk_windowdiff  # noqa: E402
from fit_chapter_cues import fit_table  # noqa: E402

from mediaflow.chapters import METHOD as CHAPTERS_METHOD  # noqa: E402
from mediaflow.chapters import ChapterOptions, chapterize_sentences, summarize_episode  # noqa: E402
from mediaflow.chapters.cues import cue_scores  # noqa: E402
from mediaflow.chapters.sentences import Sentence  # noqa: E402


# -- the method, frozen --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Method:
    """The chapterizer's settings and the bench's scoring conventions: every figure follows from these."""

    chapters: ChapterOptions = field(default_factory=ChapterOptions)  # the shipped defaults
    context: bool = True  # the episode title steers the segmentation, as it does in the product
    # opening-cue table: "loo" refits it without the scored episode, "shipped" is mediaflow/chapters/
    # cues.json (fit on all of dev: in-sample there), "off" uses none
    cues: str = "loo"
    boundary_tolerances_s: tuple[float, ...] = (15.0, 30.0)
    rouge_per_predicted_stemmed: bool = True  # today's convention, kept comparable with earlier runs
    rouge_per_creator_stemmed: bool = False  # lower-cased words, no stemming
    torch_threads: int = 1  # 1 measures CPU seconds without thread spin on a shared machine
    # "ours": the segmenter's chapters; "creator": the creator's own boundaries, only titled (an upper bound
    # for the titles: what they would score if the segmentation were perfect)
    boundaries: str = "ours"

    def to_dict(self) -> dict:
        return {"chapters_method": CHAPTERS_METHOD, **asdict(self)}


METHOD = Method()
SEGMENT_KNOBS = ("penalty", "prior_weight", "cue_weight", "length_scale", "smooth")  # overridable from the CLI


def in_sample(eval_dir: Path, method: Method) -> dict:
    """Which parts of the method were fit on the episodes being scored."""
    on_dev = eval_dir.resolve() == DEV.resolve()
    cue_table = {"loo": False, "shipped": on_dev, "off": None}[method.cues]
    return {
        "settings": on_dev,  # segmentation and title settings were chosen on dev (docs/benchmarks.md)
        "cue_table": cue_table,  # None: no table used
        "any": on_dev,
        "note": ("in-sample: the settings were chosen on these episodes"
                 + ("" if cue_table is None else ", and the cue table was fit on them" if cue_table
                    else "; the cue table is refit without each scored episode (out-of-sample)"))
        if on_dev else "out-of-sample: neither the settings nor the cue table were fit on these episodes",
    }


def title_rouge(ep: dict, hyp: list[int], titles: list[str], scorer) -> float:
    """Per predicted chapter: its title against the creator title of the creator chapter it overlaps most
    (in sentences). Creator chapters that no prediction lands in are not counted."""
    n = len(ep["sentences"])
    ref_spans = list(zip(ep["ref"], ep["ref"][1:] + [n]))
    hyp_spans = list(zip(hyp, hyp[1:] + [n]))
    scores = []
    for (a, b), t in zip(hyp_spans, titles):
        overlaps = [max(0, min(b, d) - max(a, c)) for c, d in ref_spans]
        true = ep["ref_titles"][int(np.argmax(overlaps))]
        scores.append(scorer.score(true, t)["rougeL"].fmeasure)
    return float(np.mean(scores)) if scores else 0.0


def title_rouge_per_creator(ep: dict, chapters: list, scorer) -> float:
    """Per creator chapter: its title against the title of the predicted chapter overlapping it most in
    time; 0 for a creator chapter that no predicted chapter overlaps."""
    scores = []
    for (a, b), true in zip(ep["ref_spans"], ep["ref_titles"]):
        overlaps = [max(0.0, min(b, c.end) - max(a, c.start)) for c in chapters]
        if not overlaps or max(overlaps) <= 0:
            scores.append(0.0)
            continue
        scores.append(scorer.score(true, chapters[int(np.argmax(overlaps))].title)["rougeL"].fmeasure)
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


def model_titles(ep, sents, hyp, cues, cpu_extractive, embedder, method, per_predicted, per_creator,
                 memo: str | None, cuts: list[int] | None = None) -> dict:
    """The same chapters titled and summarised by the language model, scored as the extractive titles are.

    With `memo`, answers already generated for the same prompts are read from that file (greedy decoding:
    the same prompt gives the same words) and their recorded CPU is counted as if they had been run, so a
    rerun is cheap and still reports what a fresh run costs."""
    from mediaflow import llm

    # no wall-clock timeout here: the bench measures CPU, and on a loaded machine a chapter's wall time
    # says more about the other processes than about the model
    opts = replace(method.chapters, title_method="model",
                   abstractive=replace(method.chapters.abstractive, timeout_s=3600.0))
    model = llm.get_llm()  # loaded before the clock starts: a worker loads it once
    if memo and (model.memo is None or str(model.memo.path) != memo):
        model.memo = llm.GenerationMemo(memo)
    before, stats0 = llm.fallback_counts(), Counter(model.stats)
    t0 = time.process_time()
    chapters = chapterize_sentences(sents, ep["duration"], title=ep["title"] if method.context else None,
                                    embedder=embedder, options=opts, cues=cues, cuts=cuts)
    t_titles = time.process_time()
    summary = summarize_episode(chapters, ep["title"], None, opts)
    stats = Counter(model.stats)
    stats.subtract(stats0)
    cpu_episode_summary = time.process_time() - t_titles
    cpu = time.process_time() - t0 - cpu_extractive + stats["memo_cpu_s"]  # the segmentation ran in both
    after = llm.fallback_counts()
    fell = {f"{k}:{r}": after[(k, r)] - before.get((k, r), 0) for k, r in after if after[(k, r)] > before.get((k, r), 0)}
    titled = sum(t not in ("Introduction", "Closing Remarks") and not t.startswith("Sponsors") for t in
                 (c.title for c in chapters)) or 1
    return {
        "model_title_rougeL_per_predicted": title_rouge(ep, hyp, [c.title for c in chapters], per_predicted),
        "model_title_rougeL_per_creator": title_rouge_per_creator(ep, chapters, per_creator),
        "llm_cpu_s_per_hour": cpu / (ep["duration"] / 3600),
        "llm_cpu_s_per_chapter": cpu / len(chapters),
        "llm_episode_summary_cpu_s": cpu_episode_summary,
        "llm_stats": {k: round(v, 3) for k, v in stats.items()},
        "llm_title_fallback_rate": sum(v for k, v in fell.items() if k.startswith("title:")) / titled,
        "llm_summary_rate": sum(c.summary is not None for c in chapters) / len(chapters),
        "model_titles": [c.title for c in chapters], "summaries": [c.summary for c in chapters],
        "episode_summary": summary, "llm_fallbacks": fell,
    }


def split_of(i: int) -> str:
    """Declared before any tuning of the model's prompts: within each source's file order, episodes at
    even positions tune, odd ones are held out (never looked at while changing a prompt)."""
    return "tune" if i % 2 == 0 else "heldout"


def llm_code_version() -> str:
    """What the model's titles depend on besides the method: the prompts and the decoding code."""
    import hashlib

    from mediaflow import llm
    from mediaflow.chapters import abstractive

    return hashlib.sha256(Path(llm.__file__).read_bytes() + Path(abstractive.__file__).read_bytes()).hexdigest()[:16]


# -- run -------------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--eval", default=str(DEV))
    ap.add_argument("--source", default=",".join(LOADERS))
    ap.add_argument("--limit", type=int, default=0, help="episodes per source (0 = all)")
    for knob in SEGMENT_KNOBS:
        ap.add_argument("--" + knob.replace("_", "-"), type=type(getattr(METHOD.chapters.segment, knob)),
                        help=f"override the segmentation's {knob} (default {getattr(METHOD.chapters.segment, knob)})")
    ap.add_argument("--no-context", action="store_true", help="ignore the episode title")
    ap.add_argument("--cues", choices=("loo", "shipped", "off"), default=METHOD.cues,
                    help="opening-cue table: refit without the scored episode (honest on dev), the shipped one "
                         "(fit on dev: in-sample there), or none")
    ap.add_argument("--threads", type=int, default=METHOD.torch_threads, help="torch threads")
    ap.add_argument("--titles", choices=("extractive", "model"), default="extractive",
                    help="model: also title and summarise every episode with the language model")
    ap.add_argument("--memo", default=str(ROOT / "bench" / "results" / "llm_memo.jsonl"),
                    help="the language model's answers kept on disk: reruns read them ('' = always run it)")
    ap.add_argument("--boundaries", choices=("ours", "creator"), default=METHOD.boundaries,
                    help="creator: title the creator's own chapters instead of ours (the titles' upper bound)")
    ap.add_argument("--split", choices=("all", "tune", "heldout"), default="all",
                    help="tune: episodes at even positions of each source's file order; heldout: odd ones")
    ap.add_argument("--episodes", default="", help="only these episode ids (comma-separated), after --split")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "chapters.json"))
    args = ap.parse_args()

    root = Path(args.eval)
    if not root.is_dir():
        sys.exit(f"{root} not found: the chapter benchmark needs ../shared/eval (not shipped with the project)")
    overrides = {k: getattr(args, k) for k in SEGMENT_KNOBS if getattr(args, k) is not None}
    method = replace(METHOD, chapters=replace(METHOD.chapters, segment=replace(METHOD.chapters.segment, **overrides)),
                     context=not args.no_context, cues=args.cues, torch_threads=args.threads,
                     boundaries=args.boundaries)
    sample = in_sample(root, method)
    print("method:", json.dumps(method.to_dict(), default=float))
    print(f"figures: {sample['note']}")

    import torch
    from rouge_score import rouge_scorer

    from mediaflow.embed import get_embedder

    torch.set_num_threads(method.torch_threads)
    per_predicted = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=method.rouge_per_predicted_stemmed)
    per_creator = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=method.rouge_per_creator_stemmed)
    load_average = os.getloadavg()
    embedder = get_embedder()
    embedder.encode(["warm up"])
    episodes = load(root, args.source.split(","), 0)
    for source in dict.fromkeys(ep["source"] for ep in episodes):
        for i, ep in enumerate(e for e in episodes if e["source"] == source):
            ep["split"] = split_of(i)
    # --limit counts episodes per source within the split asked for
    if args.split != "all":
        episodes = [ep for ep in episodes if ep["split"] == args.split]
    if args.episodes:
        episodes = [ep for ep in episodes if ep["id"] in args.episodes.split(",")]
    if args.limit:
        episodes = [ep for src in dict.fromkeys(e["source"] for e in episodes)
                    for ep in [e for e in episodes if e["source"] == src][:args.limit]]

    partial = Path(args.out + ".partial.jsonl")
    run_key = json.dumps({"method": method.to_dict(), "titles": args.titles,
                          "llm_code": llm_code_version() if args.titles == "model" else None},
                         default=float, sort_keys=True)
    done = {}
    if partial.exists():
        for line in partial.read_text().splitlines():
            r = json.loads(line)
            if r.get("run_key") == run_key:
                done[(r["source"], r["id"])] = r
    rows = []
    for ep in episodes:
        if (ep["source"], ep["id"]) in done:
            rows.append(done[(ep["source"], ep["id"])])
            continue
        sents, n = ep["sentences"], len(ep["sentences"])
        cues, cuts = None, None
        if method.boundaries == "creator":  # nothing is segmented, so no cue table is fit
            cuts = ep["ref"]
        elif method.cues == "loo":
            cues = cue_scores([s.text for s in sents], fit_table(episodes, exclude=ep))
        elif method.cues == "off":
            cues = np.zeros(n)
        t0 = time.process_time()
        chapters = chapterize_sentences(sents, ep["duration"], title=ep["title"] if method.context else None,
                                        embedder=embedder, options=method.chapters, cues=cues, cuts=cuts)
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
            "title_rougeL_per_predicted": title_rouge(ep, hyp, [c.title for c in chapters], per_predicted),
            "title_rougeL_per_creator": title_rouge_per_creator(ep, chapters, per_creator),
            "cpu_s_per_hour": cpu / (ep["duration"] / 3600),
            "even_pk": pk_windowdiff(ep["ref"], even, n)[0], "even_windowdiff": pk_windowdiff(ep["ref"], even, n)[1],
            "texttiling_pk": pk_windowdiff(ep["ref"], tt, n)[0],
            "texttiling_windowdiff": pk_windowdiff(ep["ref"], tt, n)[1],
            "titles": [c.title for c in chapters],
            "max_title_len": max(len(c.title) for c in chapters),
        }
        if ep["timed"]:
            pred_t = [c.start for c in chapters]
            for tol in method.boundary_tolerances_s:
                row[f"f1_{tol:g}s"] = boundary_f1(ep["ref_times"], pred_t, tol)
            tol = max(method.boundary_tolerances_s)
            row[f"even_f1_{tol:g}s"] = boundary_f1(ep["ref_times"], [starts[i] for i in even], tol)
            row[f"texttiling_f1_{tol:g}s"] = boundary_f1(ep["ref_times"], [starts[i] for i in tt], tol)
        if args.titles == "model":
            row.update(model_titles(ep, sents, hyp, cues, cpu, embedder, method, per_predicted, per_creator,
                                    args.memo or None, cuts))
        row["creator_titles"], row["run_key"], row["split"] = ep["ref_titles"], run_key, ep["split"]
        with partial.open("a") as f:
            f.write(json.dumps(row, default=float) + "\n")
        print(f"{ep['source']}/{ep['id']}: done", flush=True)
        rows.append(row)

    tols = [f"{t:g}s" for t in method.boundary_tolerances_s]
    metrics = ["windowdiff", "pk", *(f"f1_{t}" for t in tols), "n_true", "n_pred", "title_rougeL_per_predicted",
               "title_rougeL_per_creator", "cpu_s_per_hour", "even_windowdiff", "even_pk", f"even_f1_{tols[-1]}",
               "texttiling_windowdiff", "texttiling_pk", f"texttiling_f1_{tols[-1]}"]
    if args.titles == "model":
        metrics += ["model_title_rougeL_per_predicted", "model_title_rougeL_per_creator", "llm_cpu_s_per_hour",
                    "llm_title_fallback_rate", "llm_summary_rate", "llm_cpu_s_per_chapter"]
    groups = {s: [r for r in rows if r["source"] == s] for s in dict.fromkeys(r["source"] for r in rows)}
    if args.split == "all" and len({r.get("split") for r in rows}) > 1:
        for s in list(groups):
            for sp in ("tune", "heldout"):
                groups[f"{s}/{sp}"] = [r for r in groups[s] if r.get("split") == sp]
        for sp in ("tune", "heldout"):
            groups[sp] = [r for r in rows if r.get("split") == sp]
    groups["overall"] = rows
    summary = {}
    for g, rs in groups.items():
        summary[g] = {"episodes": len(rs)}
        for m in metrics:
            vals = [r[m] for r in rs if m in r]
            summary[g][m] = round(float(np.mean(vals)), 4) if vals else None
    result = {"eval": str(root), "in_sample": sample, "method": method.to_dict(), "load_average_at_start": load_average,
              "summary": summary, "episodes": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, default=float))

    print("| metric | " + " | ".join(groups) + " |")
    print("|---|" + "---|" * len(groups))
    for m in metrics:
        print(f"| {m} | " + " | ".join("–" if summary[g][m] is None else f"{summary[g][m]:.3f}" for g in groups) + " |")
    print(f"\nThese figures are {sample['note']}.")
    print(f"JSON: {args.out}")


if __name__ == "__main__":
    main()
