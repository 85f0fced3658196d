"""Does an episode's stored synthetic queries (mediaflow/queries.py) make it findable by what a listener types?

Catalogue: the first `--limit` creator-chaptered dev episodes of each source (../shared/eval/chapters/dev;
text only). Each episode is indexed as the product indexes it (mediaflow/search.py, the ranking behind
`GET /episodes?q=`):
  (a) title + our keyphrase chapter titles (the title/keyword search);
  (b) (a) + the language model's synthetic queries (+ its episode summary with --summaries).
The model writes the queries from the episode title and our keyphrase chapter titles (the pipeline gives it
the model's own titles and summaries; they cost ~1,000 CPU-s per hour of audio, so not here).

Test queries: the creator's chapter titles of the episode (Introduction / Sponsors / Review & Credits and the
like left out): what the creators thought a listener looks for, never shown to the model, so not circular.
Split: Crash Course is the dev half (the prompt and field weights may be tuned there), Huberman Lab is
reported separately as held-out. Scores: recall@1, recall@5 and MRR of the episode among the catalogue.

Generated queries are cached (bench/results/search_cache.json), so a rerun is cheap; run it niced:
  nice -n 10 .venv/bin/python bench/search.py --limit 10
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from itertools import zip_longest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from chapter_data import DEV, LOADERS, load  # noqa: E402

from mediaflow import queries, search  # noqa: E402

CONVENTIONAL = re.compile(r"\b(intro|introduction|sponsors?|credits|review|recap|closing|conclusion|outro|"
                          r"ad|ads|support)\b", re.IGNORECASE)
SKIP = re.compile(r"sponsor|credits|patreon|acknowledg|thank", re.IGNORECASE)


def test_queries(ref_titles: list[str]) -> list[str]:
    """The creator's chapter titles a listener could type: conventional chapters left out, "Introduction: X"
    kept as X."""
    out = []
    for t in ref_titles:
        t = re.sub(r"^\s*(introduction|intro)\s*[:\-–]\s*", "", t, flags=re.IGNORECASE).strip()
        if not t or SKIP.search(t) or CONVENTIONAL.search(t) and len(search.words(CONVENTIONAL.sub("", t))) < 2:
            continue
        if search.words(t):
            out.append(t)
    return out


def _save(cache: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(cache, indent=1, ensure_ascii=False))
    tmp.replace(path)


def prepare(episodes: list[dict], cache: dict, path: Path, summaries: bool, timeout_s: float) -> None:
    """Keyphrase chapters, queries (and summaries) of each episode, made once and cached on disk."""
    from mediaflow.chapters import ChapterOptions, chapterize_sentences
    from mediaflow.embed import get_embedder

    opts = ChapterOptions(title_method="extractive")
    for ep in episodes:
        key = f"{ep['source']}/{ep['id']}"
        entry = cache.setdefault(key, {})
        if "chapters" not in entry:
            chapters = chapterize_sentences(ep["sentences"], ep["duration"], ep["title"], None, get_embedder(), opts)
            entry["chapters"] = [c.title for c in chapters]
            _save(cache, path)
        if entry.get("method") != queries.METHOD:  # the prompt changed: the queries are redone
            entry.pop("queries", None), entry.pop("summary", None)
        if "queries" not in entry:
            from mediaflow import llm
            from mediaflow.queries import QueryOptions, write_queries

            started = time.perf_counter()
            timeouts = llm.fallback_counts().get(("queries", "timeout"), 0)
            found = write_queries(llm.get_llm(), ep["title"], None, [{"title": t} for t in entry["chapters"]],
                                  QueryOptions(timeout_s=timeout_s))
            if llm.fallback_counts().get(("queries", "timeout"), 0) > timeouts:
                print(f"{key}: timed out after {timeout_s} s; a rerun tries again", flush=True)
                continue
            entry["queries"], entry["method"] = found, queries.METHOD
            entry["queries_s"] = round(time.perf_counter() - started, 1)
            print(f"{key}: {len(entry['queries'])} queries in {entry['queries_s']} s: {entry['queries']}",
                  flush=True)
            _save(cache, path)
        if summaries and "summary" not in entry:
            from mediaflow import llm
            from mediaflow.chapters.abstractive import write_episode_summary

            from mediaflow.chapters.abstractive import AbstractiveOptions

            entry["summary"] = write_episode_summary(entry["chapters"], [None] * len(entry["chapters"]),
                                                     ep["title"], None, llm.get_llm(),
                                                     AbstractiveOptions(timeout_s=timeout_s))
            _save(cache, path)


def score(episodes: list[dict], cache: dict, condition: str) -> dict:
    docs = {}
    for ep in episodes:
        entry = cache[f"{ep['source']}/{ep['id']}"]
        fields = {"title": ep["title"], "chapters": "\n".join(entry["chapters"])}
        if condition == "b":
            fields["queries"] = "\n".join(entry.get("queries") or [])
            fields["summary"] = entry.get("summary") or ""
        docs[f"{ep['source']}/{ep['id']}"] = fields
    per_source: dict[str, list[int | None]] = {}
    for ep in episodes:
        key = f"{ep['source']}/{ep['id']}"
        for q in test_queries(ep["ref_titles"]):
            ranked = [k for k, _ in search.rank(q, docs)]
            per_source.setdefault(ep["source"], []).append(ranked.index(key) + 1 if key in ranked else None)
    out = {}
    for source, ranks in [*per_source.items(), ("all", [r for v in per_source.values() for r in v])]:
        n = len(ranks) or 1
        out[source] = {"queries": len(ranks),
                       "recall@1": sum(1 for r in ranks if r == 1) / n,
                       "recall@5": sum(1 for r in ranks if r and r <= 5) / n,
                       "mrr": sum(1 / r for r in ranks if r) / n}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--eval", default=str(DEV))
    ap.add_argument("--source", default=",".join(LOADERS))
    ap.add_argument("--limit", type=int, default=10, help="episodes per source in the catalogue (0 = all)")
    ap.add_argument("--summaries", action="store_true", help="also the model's episode summary in (b)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per generation (a loaded machine is slow)")
    ap.add_argument("--cached-only", action="store_true",
                    help="generate nothing: the catalogue is the episodes whose queries are in the cache")
    ap.add_argument("--cache", default=str(ROOT / "bench" / "results" / "search_cache.json"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "search.json"))
    args = ap.parse_args()
    root = Path(args.eval)
    if not root.is_dir():
        sys.exit(f"no evaluation data at {root} (see ../shared/eval/README.md)")
    episodes = load(root, args.source.split(","), args.limit)
    cache_path = Path(args.cache)
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    by_source = [[e for e in episodes if e["source"] == s] for s in dict.fromkeys(e["source"] for e in episodes)]
    turns = [e for group in zip_longest(*by_source) for e in group if e is not None]  # sources take turns
    if args.cached_only:  # score what a stopped run left: the episodes whose queries are made
        episodes = [e for e in turns if "queries" in cache.get(f"{e['source']}/{e['id']}", {})]
    else:
        prepare(turns, cache, cache_path, args.summaries, args.timeout)
    results = {c: score(episodes, cache, c) for c in ("a", "b")}
    names = {"a": "title + keyphrase chapter titles", "b": "+ synthetic queries" + (" + summary" if args.summaries else "")}
    print(f"\ncatalogue: {len(episodes)} episodes; test queries: creator chapter titles (held from the model)")
    print(f"{'index':40s} {'source':20s} {'queries':>7s} {'R@1':>6s} {'R@5':>6s} {'MRR':>6s}")
    for c, by_source in results.items():
        for source, m in by_source.items():
            print(f"{names[c]:40s} {source:20s} {m['queries']:7d} {m['recall@1']:6.3f} {m['recall@5']:6.3f} "
                  f"{m['mrr']:6.3f}")
    seconds = [e.get("queries_s") for e in cache.values() if e.get("queries_s")]
    n_queries = [len(cache[f"{e['source']}/{e['id']}"].get("queries") or []) for e in episodes]
    doc = {"command": " ".join(sys.argv), "episodes": len(episodes), "limit": args.limit,
           "test_queries": "creator chapter titles, conventional ones left out; never shown to the model",
           "split": "crash_course_psych = dev (tuning), huberman_lab = held-out",
           "model_input": "episode title + keyphrase chapter titles", "conditions": names, "results": results,
           "synthetic_queries_per_episode": sum(n_queries) / max(len(n_queries), 1),
           "episodes_without_queries": sum(1 for n in n_queries if n == 0),
           "seconds_per_episode": sum(seconds) / len(seconds) if seconds else None}
    Path(args.out).write_text(json.dumps(doc, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
