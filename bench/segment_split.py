"""Chapter segmentation on a declared tune / held-out split of the dev episodes (issue 16, WindowDiff).

    nice -n 10 .venv/bin/python bench/segment_split.py [--variants all | "shipped;smooth=2"] [--parts tune]

The split is fixed before any result is seen: per source, the episode ids sorted, shuffled with
`SPLIT_SEED`, the first half (rounded up) is `tune`, the rest `held-out`. Variants are chosen on tune
only; held-out is reported beside it and a variant ships only if held-out improves too. The
opening-cue table is refit without the scored episode on tune (leave-one-out within tune) and fit on
tune alone for held-out, so no held-out episode informs any part of what scores it.

Scores are in sentence units as in bench/chapters.py (WindowDiff, Pk with k = half the mean true
chapter length), plus chapters predicted vs true and, for Crash Course, boundary F1 within ±30 s.
Sentence embeddings (MiniLM, the product's embedder) are cached under
~/.cache/mediaflow/bench-segment, keyed by the sentences' text, so runs after the first are cheap.
Prints a table; writes bench/results/segment_split.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from chapter_data import DEV, LOADERS, boundary_f1, load, pk_windowdiff  # noqa: E402
from fit_chapter_cues import fit_table  # noqa: E402

from mediaflow.chapters.cues import cue_scores  # noqa: E402
from mediaflow.chapters.segment import SegmentOptions, boundaries  # noqa: E402

SPLIT_SEED = 20261202  # declared before any variant was scored; do not change to chase a result
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mediaflow" / "bench-segment"
OUT = ROOT / "bench" / "results" / "segment_split.json"


def split(episodes: list[dict], seed: int = SPLIT_SEED) -> dict[str, str]:
    """(source, id) -> "tune" or "held-out": half of each source's episodes, at random, fixed by the seed."""
    out = {}
    for source in sorted({e["source"] for e in episodes}):
        ids = sorted(e["id"] for e in episodes if e["source"] == source)
        order = np.random.default_rng(seed).permutation(len(ids))
        n_tune = (len(ids) + 1) // 2
        for rank, i in enumerate(order):
            out[(source, ids[i])] = "tune" if rank < n_tune else "held-out"
    return out


def embed_cached(ep: dict, embedder) -> tuple[np.ndarray, np.ndarray]:
    """(sentence embeddings, title embedding) of an episode, from the disk cache when the texts match."""
    texts = [s.text for s in ep["sentences"]]
    key = hashlib.sha256(json.dumps([embedder.model_id, ep["title"], texts]).encode()).hexdigest()[:16]
    path = CACHE / f"{ep['source']}-{ep['id']}-{key}.npz"
    if path.exists():
        z = np.load(path)
        return z["emb"], z["context"]
    emb = embedder.encode(texts)
    context = embedder.encode([ep["title"]])[0]
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, emb=emb, context=context)
    tmp.replace(path)
    return emb, context


# -- variants ----------------------------------------------------------------------------------------
# A variant is segmentation options plus, optionally, extra per-sentence boundary evidence added to the
# cue log-odds (the segmenter's only per-sentence input besides the embeddings).
_WORD = re.compile(r"[a-z']+")


def _zscore(v: np.ndarray) -> np.ndarray:
    return (v - v.mean()) / max(float(v.std()), 1e-9)


def lexical_depth(ep: dict, block: int = 6) -> np.ndarray:
    """Per sentence: z-scored TextTiling depth of the gap before it (lexical cohesion, Hearst 1997)."""
    if "_lex" not in ep:
        sents = ep["sentences"]
        vocab: dict[str, int] = {}
        rows = [[vocab.setdefault(w, len(vocab)) for w in _WORD.findall(s.text.lower()) if len(w) > 3] for s in sents]
        m = np.zeros((len(sents), max(len(vocab), 1)))
        for i, r in enumerate(rows):
            np.add.at(m[i], r, 1.0)
        c = np.vstack([np.zeros((1, m.shape[1])), np.cumsum(m, 0)])
        n = len(sents)
        g = np.arange(1, n)
        lo, hi = np.maximum(g - block, 0), np.minimum(g + block, n)
        a, b = c[g] - c[lo], c[hi] - c[g]
        sim = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-9)
        ep["_lex"] = np.concatenate([[0.0], _zscore(_local_depth(sim))])
    return ep["_lex"]


def _local_depth(sim: np.ndarray, reach: int = 12) -> np.ndarray:
    """Depth against the highest similarity within `reach` gaps on each side."""
    n = len(sim)
    out = np.zeros(n)
    for i in range(n):
        out[i] = sim[max(0, i - reach):i + 1].max() + sim[i:i + reach + 1].max() - 2 * sim[i]
    return out


def embedding_depth(ep: dict, block: int = 5) -> np.ndarray:
    """Per sentence: z-scored depth of the cosine between the mean embeddings before and after it."""
    key = f"_edep{block}"
    if key not in ep:
        e = ep["_emb"].astype(float)
        n = len(e)
        c = np.vstack([np.zeros((1, e.shape[1])), np.cumsum(e, 0)])
        g = np.arange(1, n)
        lo, hi = np.maximum(g - block, 0), np.minimum(g + block, n)
        a, b = c[g] - c[lo], c[hi] - c[g]
        sim = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-9)
        ep[key] = np.concatenate([[0.0], _zscore(_local_depth(sim))])
    return ep[key]


def caption_pause(ep: dict) -> np.ndarray:
    """Crash Course only: seconds a caption line lasts beyond what its text needs at the episode's rate,
    put on the sentence that starts the next line (whole-second caption times: a coarse pause)."""
    if "_pause" not in ep:
        out = np.zeros(len(ep["sentences"]))
        if ep["timed"]:
            d = json.loads((DEV / ep["source"] / f"{ep['id']}.json").read_text())
            lines = d["caption_lines"]
            st = np.array([ln["start"] for ln in lines] + [d["duration_seconds"]], float)
            dur, chars = np.diff(st), np.array([len(ln["text"]) for ln in lines], float)
            rate = np.median(chars[dur > 0] / dur[dur > 0])
            excess = dur - chars / rate
            starts = np.array([s.start for s in ep["sentences"]])
            for i in range(1, len(lines)):
                j = int(np.argmin(np.abs(starts - st[i])))
                if abs(starts[j] - st[i]) < 0.01:
                    out[j] = max(out[j], excess[i - 1])
        ep["_pause"] = out
    return ep["_pause"]


def _extra(kind: str, w: float, **kw):
    f = {"lex": lexical_depth, "emb": embedding_depth}[kind]
    return lambda ep: w * np.clip(f(ep, **kw), -3, 3)


def _pause_extra(w: float, floor: float = 1.0):
    return lambda ep: w * np.clip(caption_pause(ep) - floor, 0, 3)


# Every variant starts from the shipped SegmentOptions(); "before" is the method as it was before pauses
# (no pause estimate for caption lines, no pause weight): what `git show 00d1002` ships.
VARIANTS: dict[str, dict] = {
    "before (no pauses)": {"opts": {"pause_weight": 0.0}, "no_pauses": True},
    "pause estimate, snapping only": {"opts": {"pause_weight": 0.0}},
    "shipped": {},
}
for _v in (0.25, 0.75):
    VARIANTS[f"pause_weight={_v}"] = {"opts": {"pause_weight": _v}}
for _k, _vals in {"penalty": (0.3, 0.5), "prior_weight": (0.05, 0.2), "cue_weight": (0.25, 0.75),
                  "smooth": (2, 4), "length_scale": (2.25, 2.75)}.items():
    for _v in _vals:
        VARIANTS[f"{_k}={_v}"] = {"opts": {_k: _v}}
for _v in (0.25, 0.5):
    VARIANTS[f"lexdepth={_v}"] = {"extra": _extra("lex", _v)}
    VARIANTS[f"embdepth={_v}"] = {"extra": _extra("emb", _v)}
# the first CC-only look at pauses, before the estimate moved into mediaflow/chapters/sentences.py
VARIANTS["caption pause proxy (bench-side), no pause weight"] = {"opts": {"pause_weight": 0.0}, "no_pauses": True,
                                                                 "extra": _pause_extra(1.0)}
DEFAULT = ["before (no pauses)", "pause estimate, snapping only", "shipped", "pause_weight=0.25", "pause_weight=0.75"]


def run_episode(ep: dict, opts: SegmentOptions, extra=None, no_pauses: bool = False) -> list[int]:
    sents = ep["sentences"]
    cues = ep["_cues"] if extra is None else ep["_cues"] + extra(ep)
    pauses = np.zeros(len(sents)) if no_pauses else np.array([s.pause_before for s in sents])
    return boundaries(ep["_emb"], np.array([s.start for s in sents]), np.array([s.end for s in sents]),
                      pauses, context=ep["_context"], opts=opts, cues=cues)


def score(ep: dict, cuts: list[int]) -> dict:
    n = len(ep["sentences"])
    pk, wd = pk_windowdiff(ep["ref"], cuts, n)
    row = {"windowdiff": wd, "pk": pk, "n_true": len(ep["ref"]), "n_pred": len(cuts)}
    if ep["timed"]:
        row["f1_30s"] = boundary_f1(ep["ref_times"], [ep["sentences"][i].start for i in cuts], 30.0)
    return row


def summarise(rows: list[dict]) -> dict:
    groups = {}
    for part in ("tune", "held-out"):
        for source in [*LOADERS, "overall"]:
            rs = [r for r in rows if r["part"] == part and (source == "overall" or r["source"] == source)]
            if rs:
                groups[f"{part}/{source}"] = {
                    m: round(float(np.mean([r[m] for r in rs if m in r])), 4)
                    for m in ("windowdiff", "pk", "n_true", "n_pred", "f1_30s") if any(m in r for r in rs)
                } | {"episodes": len(rs)}
    return groups


def evaluate(episodes: list[dict], opts: SegmentOptions, extra=None, no_pauses: bool = False,
             parts=("tune", "held-out")) -> list[dict]:
    rows = []
    for ep in episodes:
        if ep["_part"] in parts:
            rows.append({"source": ep["source"], "id": ep["id"], "part": ep["_part"],
                         **score(ep, run_episode(ep, opts, extra, no_pauses))})
    return rows


def prepare(sources: list[str]) -> list[dict]:
    from mediaflow.embed import get_embedder

    episodes = load(DEV, sources)
    parts = split(episodes)
    embedder = get_embedder()
    tune = [e for e in episodes if parts[(e["source"], e["id"])] == "tune"]
    held_table = fit_table(tune)
    for ep in episodes:
        ep["_part"] = parts[(ep["source"], ep["id"])]
        ep["_emb"], ep["_context"] = embed_cached(ep, embedder)
        table = fit_table(tune, exclude=ep) if ep["_part"] == "tune" else held_table
        ep["_cues"] = cue_scores([s.text for s in ep["sentences"]], table)
    return episodes


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", default=",".join(LOADERS))
    ap.add_argument("--variants", default=";".join(DEFAULT), help=f"'all', or ';'-separated, of: {'; '.join(VARIANTS)}")
    ap.add_argument("--parts", default="tune,held-out", help="tune: choose on these alone")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the embeddings not yet cached")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    if not DEV.is_dir():
        sys.exit(f"{DEV} not found: this benchmark needs ../shared/eval (not shipped with the project)")
    import torch

    torch.set_num_threads(args.threads)
    t0 = time.time()
    episodes = prepare(args.source.split(","))
    print(f"prepared {len(episodes)} episodes in {time.time() - t0:.0f} s "
          f"(tune {sum(e['_part'] == 'tune' for e in episodes)}, held-out {sum(e['_part'] == 'held-out' for e in episodes)})")
    results = {}
    for name in (list(VARIANTS) if args.variants == "all" else args.variants.split(";")):
        v = VARIANTS[name]
        opts = replace(SegmentOptions(), **v.get("opts", {}))
        t0 = time.time()
        rows = evaluate(episodes, opts, v.get("extra"), v.get("no_pauses", False), tuple(args.parts.split(",")))
        results[name] = {"options": asdict(opts), "summary": summarise(rows), "episodes": rows}
        print(f"{name}: {time.time() - t0:.0f} s", flush=True)
    cols = list(next(iter(results.values()))["summary"])
    print("| variant | " + " | ".join(f"WD {c}" for c in cols) + " |")
    print("|---|" + "---|" * len(cols))
    for name, r in results.items():
        print(f"| {name} | " + " | ".join(
            f"{r['summary'][c]['windowdiff']:.3f} ({r['summary'][c]['n_pred']:.1f}/{r['summary'][c]['n_true']:.1f})"
            for c in cols) + " |")
    print("(in brackets: chapters predicted / true, per episode)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"split_seed": SPLIT_SEED, "split": {
        p: sorted(f"{e['source']}/{e['id']}" for e in episodes if e["_part"] == p) for p in ("tune", "held-out")},
        "variants": results}, indent=1, default=float))
    print(f"JSON: {args.out}")


if __name__ == "__main__":
    main()
