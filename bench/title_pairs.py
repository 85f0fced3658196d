"""Training pairs for the title adapter: the product's own title prompt for each creator chapter, and
the creator's title as the answer (models/title_adapter/train.py trains on them).

    .venv/bin/python bench/title_pairs.py --out bench/results/title_pairs.jsonl

Only the tune halves of dev (`bench/chapters.py`'s `split_of`: even positions in each source's file
order), so the held-out halves still judge the adapter. The chapters are the creators' own (their
boundaries), the prompt is built exactly as `mediaflow.chapters.abstractive.write_chapters` builds it,
with the creator's earlier titles as the context (or the model's own, `--context model` below, as the shipped
adapter was trained). The first and last chapter of each episode are left out: the product names them
Introduction and Closing Remarks and never asks the model. The pairs hold episode text, so they stay in
bench/results (ignored by git), never in the project.

Each pair also carries the summary the base model writes after the creator's title (`summary`, None when
it fails the product's checks): trained on as well, they keep the adapter writing the summaries the base
model writes (trained on titles alone, its summaries ran on until cut off and a third failed the checks).
`--part i/n` writes every n-th episode's pairs from the i-th, so two processes share two cores.

`--context model`: the "Earlier chapters" line holds the titles the model (with the adapter loaded now) writes
for those chapters itself, one after another as `write_chapters` does, instead of the creators'. At run time the
model reads its own earlier titles, which are shorter and plainer than the creators'; trained on the creators'
it learns to follow their style from the context (exposure bias). `--summaries-from` copies each pair's summary
from earlier pair files (same episode and chapter) instead of asking the plain model again.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from chapter_data import DEV, LOADERS, load  # noqa: E402
from chapters import split_of  # noqa: E402

from mediaflow import llm  # noqa: E402
from mediaflow.chapters.abstractive import (  # noqa: E402
    AbstractiveOptions, episode_head, excerpt, title_prompt, write_chapters, write_summaries)
from mediaflow.embed import get_embedder  # noqa: E402


def own_titles(ep: dict, spans: list[tuple[int, int]], texts: list[list[str]], emb, opts: AbstractiveOptions,
               model: llm.LLM) -> list[str]:
    """The titles the model writes for the creator's chapters (`texts`), each after its own earlier ones; the
    first and last keep the creator's (the product names them), as does a chapter whose answer is refused."""
    keep = [j in (0, len(spans) - 1) for j in range(len(spans))]
    titles, _ = write_chapters(texts, [emb[a:b] for a, b in spans], list(ep["ref_titles"]), keep, ep["title"],
                               None, model, AbstractiveOptions(**{**vars(opts), "summaries": False}))
    model.forget()
    return titles


def pairs_of(ep: dict, emb, opts: AbstractiveOptions, model: llm.LLM | None, context: str = "creator",
             summaries_from: dict | None = None) -> list[dict]:
    """One {prompt, target} per inner creator chapter of `ep` (no description: the dev files have none)."""
    sents, cuts = ep["sentences"], ep["ref"]
    if len(cuts) != len(ep["ref_titles"]):  # an empty creator chapter: titles and spans would not line up
        return []
    spans = list(zip(cuts, cuts[1:] + [len(sents)]))
    texts = [[s.text for s in sents[a:b]] for a, b in spans]
    head = episode_head(ep["title"], None, opts)
    earlier = own_titles(ep, spans, texts, emb, opts, model) if context == "model" else ep["ref_titles"]
    out, sources = [], []
    for j, (a, b) in enumerate(spans[1:-1], start=1):
        chapter = texts[j]
        text = excerpt(chapter, emb[a:b], opts.excerpt_words)
        out.append({"source": ep["source"], "episode": ep["id"], "chapter": j,
                    "prompt": title_prompt(head, earlier[:j], j + 1, text, opts),
                    "target": " " + " ".join(ep["ref_titles"][j].split())})
        sources.append((text, ep["title"], "", " ".join(chapter)))
    if summaries_from is not None:
        for r in out:
            r["summary"] = summaries_from.get((r["source"], r["episode"], r["chapter"]))
    elif model is not None:  # as write_chapters asks, by the plain model: several chapters a batch, the same checks
        summaries: list[str | None] = [None] * len(out)
        for i in range(0, len(out), opts.group):
            write_summaries([(k, out[k]["prompt"] + out[k]["target"], sources[k])
                             for k in range(i, min(i + opts.group, len(out)))], summaries, model, opts, adapter=False)
            model.forget()
        for r, s in zip(out, summaries):
            r["summary"] = s
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--eval", default=str(DEV))
    ap.add_argument("--source", default=",".join(LOADERS))
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "title_pairs.jsonl"))
    ap.add_argument("--no-summaries", action="store_true", help="no summaries (with --context creator: no model run)")
    ap.add_argument("--part", default="0/1", help="i/n: every n-th tune episode from the i-th")
    ap.add_argument("--context", choices=("creator", "model"), default="creator",
                    help="earlier titles in the prompt: the creators' or the model's own")
    ap.add_argument("--summaries-from", default="", help="comma-separated pair files to copy summaries from")
    args = ap.parse_args()
    opts, embedder = AbstractiveOptions(), get_embedder()
    copied = None  # summaries to copy: None asks the plain model, {} leaves them out
    if args.summaries_from:
        copied = {(r["source"], r["episode"], r["chapter"]): r.get("summary")
                  for f in args.summaries_from.split(",") for r in map(json.loads, Path(f).read_text().splitlines())}
    elif args.no_summaries:
        copied = {}
    model = llm.get_llm() if args.context == "model" or copied is None else None
    k, n = map(int, args.part.split("/"))
    rows, seen = [], 0
    for source in args.source.split(","):
        for i, ep in enumerate(load(Path(args.eval), [source])):
            if split_of(i) == "tune":
                if seen % n == k:
                    rows += pairs_of(ep, embedder.encode([s.text for s in ep["sentences"]]), opts, model,
                                     args.context, copied)
                    print(f"{source}/{ep['id']}: {len(rows)} pairs so far", flush=True)
                seen += 1
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(tmp, out)
    by = {s: sum(r["source"] == s for r in rows) for s in args.source.split(",")}
    summaries = sum(r.get("summary") is not None for r in rows)
    print(f"{len(rows)} pairs ({', '.join(f'{s}: {c}' for s, c in by.items())}), {summaries} with a summary -> {out}")


if __name__ == "__main__":
    main()
