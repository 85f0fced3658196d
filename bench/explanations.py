"""Model-written explanations on real reasons: how many pass the checks, how long they are, what each costs.

    nice .venv/bin/python bench/explanations.py [--cc 8] [--hl 2] [--pairs 10] [--threads 1]

The reasons are real: features of the dev episodes (../shared/eval/chapters/dev, their transcripts and
creator chapters) in one catalogue, and each episode's nearest neighbour by `similar()`, explained by
`explain_pair` (shared terms, the best chapter pair, shared guests). For each pair the template's sentence and
the language model's (`explain.write_explanation`, greedy, so a rerun gives the same words) are written; a
model sentence that fails a check is counted with why (`invalid`, `timeout`). Prints a table and side-by-side
examples, writes JSON to bench/results/explanations.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from features import EVAL, load_crash_course, load_huberman  # noqa: E402
from mediaflow import llm  # noqa: E402
from mediaflow.explain import _write, explain, facts  # noqa: E402
from mediaflow.features import extract_features  # noqa: E402
from mediaflow.recommend import Catalogue, CatalogueItem, similar  # noqa: E402

SHOWS = {"crash_course_psych": "Crash Course Psychology", "huberman_lab": "Huberman Lab"}


def reasons(cc: int, hl: int, pairs: int, cache: Path) -> list:
    """Each episode's nearest neighbour's reason; kept in `cache` (features cost minutes on a busy machine)."""
    from mediaflow.embed import get_embedder
    from mediaflow.recommend import Reason

    if cache.is_file():
        kept = json.loads(cache.read_text())
        if kept["episodes"] == [cc, hl]:
            return [Reason.from_dict(d) for d in kept["reasons"]][:pairs]
    embedder = get_embedder()
    eps = [load_crash_course(f) for f in sorted((EVAL / "crash_course_psych").glob("*.json"))[:cc]]
    eps += [load_huberman(f) for f in sorted((EVAL / "huberman_lab").glob("*.json"))[:hl]]
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    items = []
    for n, ep in enumerate(eps):
        f = extract_features(ep["transcript"], ep["chapters"], ep["title"], embedder=embedder)
        items.append(CatalogueItem(episode_id=ep["id"], show=SHOWS[ep["source"]], title=ep["title"],
                                   published_at=now - timedelta(days=n), features=f))
    cat = Catalogue(items)
    out = []
    for it in items:
        for rec in similar(it.episode_id, cat, k=1):
            out.append(rec.reason)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"episodes": [cc, hl], "reasons": [r.to_dict() for r in out]}, default=str))
    return out[:pairs]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cc", type=int, default=8, help="Crash Course Psychology dev episodes")
    ap.add_argument("--hl", type=int, default=2, help="Huberman Lab dev episodes (long: minutes of features each)")
    ap.add_argument("--pairs", type=int, default=10, help="reasons explained (each episode's nearest neighbour)")
    ap.add_argument("--threads", type=int, default=1, help="llama.cpp threads")
    ap.add_argument("--timeout", type=float, default=240.0, help="seconds per sentence before the template")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "explanations.json"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not EVAL.is_dir():
        sys.exit(f"{EVAL} not found: this bench needs ../shared/eval (not shipped with the project)")
    if not llm.installed():
        sys.exit(f"the language model is not installed (missing: {', '.join(llm.missing_packages())})")
    rs = reasons(args.cc, args.hl, args.pairs, Path(args.out).with_name("explanations_reasons.json"))
    model = llm.get_llm(threads=args.threads)
    load = os.getloadavg()
    rows = []
    for r in rs:
        template = explain(r).text
        t0, c0 = time.perf_counter(), time.process_time()
        e, why = _write(r, model, timeout_s=args.timeout)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        f = facts(r)
        rows.append({"source": r.source_title, "target": r.target_title, "facts": f.text if f else None,
                     "template": template, "model": e.text if e.template == "model" else None,
                     "passed": e.template == "model", "fallback": why, "words": len(e.text.split()),
                     "wall_s": round(wall, 2), "cpu_s": round(cpu, 2)})
        print(f"{'model' if rows[-1]['passed'] else why or 'nothing to add':>8} {wall:6.1f} s  {e.text}", flush=True)
    asked = [x for x in rows if x["facts"]]
    passed = [x for x in asked if x["passed"]]
    summary = {
        "pairs": len(rows), "asked": len(asked), "passed": len(passed),
        "fallbacks": {k: sum(x["fallback"] == k for x in asked) for k in ("invalid", "timeout", "error")},
        "model_words_mean": round(sum(x["words"] for x in passed) / len(passed), 1) if passed else None,
        "template_words_mean": round(sum(len(x["template"].split()) for x in asked) / len(asked), 1) if asked else None,
        "wall_s_mean": round(sum(x["wall_s"] for x in asked) / len(asked), 1) if asked else None,
        "cpu_s_mean": round(sum(x["cpu_s"] for x in asked) / len(asked), 1) if asked else None,
        "threads": args.threads, "cpu_cores": os.cpu_count(), "load_average_at_start": [round(v, 2) for v in load],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"summary": summary, "rows": rows}, indent=2))
    print("\n| reasons asked | model sentences passing | fallbacks (invalid/timeout) | words, model | words, "
          "template | wall s / sentence | CPU s / sentence |")
    print("|---|---|---|---|---|---|---|")
    fb = summary["fallbacks"]
    print(f"| {len(asked)} | {len(passed)} | {fb['invalid']}/{fb['timeout']} | {summary['model_words_mean']} | "
          f"{summary['template_words_mean']} | {summary['wall_s_mean']} | {summary['cpu_s_mean']} |")
    print("\n| heard → recommended | template | model |\n|---|---|---|")
    for x in (passed + [x for x in asked if not x["passed"]])[:5]:
        print(f"| {x['source']} → {x['target']} | {x['template']} | {x['model'] or '(fallback: ' + x['fallback'] + ')'} |")
    print(f"\nJSON: {args.out}")


if __name__ == "__main__":
    main()
