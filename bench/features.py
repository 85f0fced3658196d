"""Feature benchmark: cost per hour of audio, similar-episode latency, and whether chapter vectors
carry their episode's content (on ../shared/eval/chapters/dev).

    .venv/bin/python bench/features.py [--limit N] [--sizes 1000,10000,100000] [--skip-audio] [--threads T]

1. text features (embeddings, keyphrases, entities) on the real dev transcripts: CPU and wall
   seconds per hour of audio;
2. audio descriptors (loudness, sounding share, music/speech) on a generated hour of audio,
   half Piper speech and half generated chords, decoded from a WAV file: seconds per hour and
   peak Python memory while streaming;
3. similar-episode latency with the brute-force index at 1k, 10k and 100k synthetic 384-d
   episodes (index search alone, and `similar()` with reasons);
4. chapter neighbours: for every creator chapter of the dev episodes, are its 5 nearest chapters
   (by chapter embedding, among all chapters of all episodes) from the same episode more often
   than chance? precision@5 against the chance rate (same-episode chapters / all others).
5. the similarity floor (`mediaflow.recommend.MIN_SIMILARITY`): episode-vector cosines of related
   pairs (the tests' same-topic episodes; dev episodes of one show) against unrelated ones (the tests'
   four topics against each other and against the dev episodes, on psychology and health), and how
   many neighbours each dev episode keeps above the floor.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import tracemalloc
import wave
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from chapter_data import caption_transcript  # noqa: E402
from mediaflow.chapters import Chapter  # noqa: E402
from mediaflow.features import FEATURES_VERSION, ChapterFeatures, EpisodeFeatures, extract_features  # noqa: E402
from mediaflow.semantic_ids import semantic_ids  # noqa: E402
from mediaflow.terms import Term  # noqa: E402
from mediaflow.transcript import Segment, Transcript  # noqa: E402

EVAL = ROOT.parent / "shared" / "eval" / "chapters" / "dev"


# -- loading the dev episodes ---------------------------------------------------------------------
def load_crash_course(path: Path) -> dict:
    d = json.loads(path.read_text())
    chapters = [Chapter(float(c["start"]), float(c["end"]), c["title"]) for c in d["chapters"]]
    return {"source": "crash_course_psych", "id": d["video_id"], "title": d["title"],
            "transcript": caption_transcript(d), "chapters": chapters}


def load_huberman(path: Path) -> dict:
    """Paragraph segments paced at the episode's own rate (the text has no times inside chapters)."""
    d = json.loads(path.read_text())
    chs = d["chapters"]
    before_last = sum(len(p.split()) for c in chs[:-1] for p in c["paragraphs"])
    rate = before_last / chs[-1]["start"] if chs[-1]["start"] > 0 else 160 / 60
    segs, starts, words = [], [], 0
    for c in chs:
        starts.append(words / rate)
        for p in c["paragraphs"]:
            n = len(p.split())
            segs.append(Segment(len(segs), words / rate, (words + n) / rate, p))
            words += n
    duration = words / rate
    chapters = [Chapter(s, e, c["title"]) for s, e, c in zip(starts, starts[1:] + [duration], chs)]
    return {"source": "huberman_lab", "id": f"hl{d['episode']}", "title": d["title"],
            "transcript": Transcript(segs, "en", duration, "paced-text"), "chapters": chapters}


def load_dev(limit: int) -> list[dict]:
    eps = []
    for source, loader in (("crash_course_psych", load_crash_course), ("huberman_lab", load_huberman)):
        files = sorted((EVAL / source).glob("*.json"))
        eps += [loader(f) for f in (files[:limit] if limit else files)]
    return eps


# -- 1. text features -----------------------------------------------------------------------------
def bench_text(eps: list[dict], embedder) -> tuple[dict, list[EpisodeFeatures]]:
    feats, rows = [], []
    for ep in eps:
        t0, c0 = time.perf_counter(), time.process_time()
        f = extract_features(ep["transcript"], ep["chapters"], ep["title"], embedder=embedder)
        rows.append((ep["source"], f.duration_s / 3600, time.perf_counter() - t0, time.process_time() - c0))
        feats.append(f)
    out = {}
    for src in sorted({r[0] for r in rows}) + ["overall"]:
        rs = [r for r in rows if src in ("overall", r[0])]
        hours = sum(r[1] for r in rs)
        out[src] = {"episodes": len(rs), "hours": round(hours, 2),
                    "wall_s_per_hour": round(sum(r[2] for r in rs) / hours, 2),
                    "cpu_s_per_hour": round(sum(r[3] for r in rs) / hours, 2)}
    return out, feats


# -- 2. audio descriptors -------------------------------------------------------------------------
def chords(seconds: float, sr: int = 16000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    step = 0.5
    t = np.arange(int(step * sr)) / sr
    env = np.minimum(1, t / 0.02) * np.minimum(1, (step - t) / 0.05)
    out = []
    for _ in range(int(seconds / step)):
        root = [48, 53, 55, 57, 50][rng.integers(5)]
        x = sum(a * np.sin(2 * np.pi * 440 * 2 ** ((m - 69) / 12) * h * t + rng.uniform(0, 6.3))
                for m in (root, root + 4, root + 7, root - 12) for h, a in ((1, 1), (2, .5), (3, .25)))
        out.append(x * env)
    y = np.concatenate(out)
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


def speech_minute() -> tuple[np.ndarray, str]:
    try:
        from mediaflow.audio_features import resample_linear
        from mediaflow.tts.piper import PiperSpeaker

        sp = PiperSpeaker()
        text = ("Coffee was first roasted and brewed in Yemen, where monks drank it to stay awake during night "
                "prayers. Coffee houses spread to Cairo and Istanbul, and then to London, where merchants read "
                "the news and traded. Today most coffee beans are grown in Brazil, Vietnam and Colombia. "
                "Charles Babbage designed the Analytical Engine, a machine of gears and punched cards. Ada "
                "Lovelace wrote what many call the first computer program for it. The transistor, invented in "
                "1947, made computers smaller, faster and far more reliable than vacuum tubes.")
        x = resample_linear(sp.speak(text), sp.sample_rate)
        return np.tile(x, int(np.ceil(60 * 16000 / len(x))))[: 60 * 16000], "piper"
    except Exception as exc:  # the piper extra is optional
        print(f"(no Piper voice: {exc}; the hour is chords only)")
        return chords(60.0, seed=1), "chords"


def bench_audio(hours: float) -> dict:
    from mediaflow.audio_features import describe_audio

    speech, kind = speech_minute()
    minutes = int(round(hours * 60))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hour.wav"
        with wave.open(str(path), "wb") as w:  # written minute by minute: the hour is never in memory
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            for m in range(minutes):
                x = speech if m % 2 == 0 else chords(60.0, seed=m)
                w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
        tracemalloc.start()
        t0, c0 = time.perf_counter(), time.process_time()
        d = describe_audio(path)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    h = d.duration_s / 3600
    return {"audio_hours": round(h, 3), "speech_kind": kind, "wall_s_per_hour": round(wall / h, 2),
            "cpu_s_per_hour_python": round(cpu / h, 2), "peak_python_mib": round(peak / 2**20, 1),
            "music_fraction": d.music_fraction, "expected_music_fraction": round((minutes // 2) / minutes, 3),
            "label": d.label, "loudness_dbfs": d.loudness_dbfs}


# -- 3. similar-episode latency -------------------------------------------------------------------
def synthetic_catalogue(n: int, dim: int = 384, seed: int = 0):
    from mediaflow.recommend import Catalogue, CatalogueItem

    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(max(8, n // 50), dim)).astype(np.float32)
    topic = rng.integers(len(centers), size=n)
    vecs = centers[topic] + 0.8 * rng.normal(size=(n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    words = [f"term{i}" for i in range(2000)]
    now = datetime(2025, 1, 1, tzinfo=timezone.utc)
    items = []
    for i in range(n):
        kw = [Term(words[(topic[i] * 7 + j) % len(words)], 0.5) for j in range(8)]
        ch = [ChapterFeatures(c, 600.0 * c, 600.0 * (c + 1), f"Chapter {c}", vecs[i], kw[c * 3:c * 3 + 3])
              for c in range(2)]
        f = EpisodeFeatures(FEATURES_VERSION, "synthetic", dim, f"Episode {i}", "en", 1.0, 1200.0, 3000, 150.0,
                            0.9, "words", vecs[i], kw, [], ch)
        items.append(CatalogueItem(f"ep{i}", f"show{i % 97}", f"Episode {i}", now - timedelta(hours=i), f))
    t0 = time.perf_counter()
    cat = Catalogue(items)
    return cat, vecs, time.perf_counter() - t0


def bench_latency(sizes: list[int], queries: int = 200) -> dict:
    from mediaflow.recommend import recommend, similar

    out = {}
    for n in sizes:
        cat, vecs, build_s = synthetic_catalogue(n)
        rng = np.random.default_rng(1)
        qs = rng.integers(n, size=queries)
        search_ms, similar_ms, rec_ms = [], [], []
        for q in qs:
            t0 = time.perf_counter()
            cat.index.search(vecs[q], 10, exclude={f"ep{q}"})
            search_ms.append(1000 * (time.perf_counter() - t0))
        similar(f"ep{qs[0]}", cat, 10)  # builds the term table once
        for q in qs[:50]:
            t0 = time.perf_counter()
            similar(f"ep{q}", cat, 10)
            similar_ms.append(1000 * (time.perf_counter() - t0))
        for q in qs[:20]:
            hist = [f"ep{int(h)}" for h in rng.integers(n, size=10)]
            t0 = time.perf_counter()
            recommend(hist, cat, k=10)
            rec_ms.append(1000 * (time.perf_counter() - t0))
        out[n] = {"search_p50_ms": round(float(np.percentile(search_ms, 50)), 2),
                  "search_p95_ms": round(float(np.percentile(search_ms, 95)), 2),
                  "similar_p50_ms": round(float(np.percentile(similar_ms, 50)), 2),
                  "similar_p95_ms": round(float(np.percentile(similar_ms, 95)), 2),
                  "recommend_10_history_p50_ms": round(float(np.percentile(rec_ms, 50)), 2),
                  "catalogue_build_s": round(build_s, 2)}
        del cat, vecs
    return out


# -- 4. chapter neighbours ------------------------------------------------------------------------
def chapter_neighbours(eps: list[dict], feats: list[EpisodeFeatures], k: int = 5) -> dict:
    vecs, owner, source = [], [], []
    for e, (ep, f) in enumerate(zip(eps, feats)):
        for c in f.chapters:
            vecs.append(c.embedding)
            owner.append(e)
            source.append(ep["source"])
    m = np.stack(vecs)
    owner, source = np.array(owner), np.array(source)
    sims = m @ m.T
    np.fill_diagonal(sims, -np.inf)
    top = np.argsort(-sims, axis=1)[:, :k]
    same_ep = (owner[top] == owner[:, None]).mean(1)
    same_src = (source[top] == source[:, None]).mean(1)
    n = len(m)
    ep_sizes = np.bincount(owner)
    chance_ep = (ep_sizes[owner] - 1) / (n - 1)
    out = {}
    for name in sorted(set(source)) + ["overall"]:
        sel = np.ones(n, bool) if name == "overall" else source == name
        out[name] = {"chapters": int(sel.sum()), "precision_at_5_same_episode": round(float(same_ep[sel].mean()), 4),
                     "chance_same_episode": round(float(chance_ep[sel].mean()), 4),
                     "lift": round(float(same_ep[sel].mean() / chance_ep[sel].mean()), 1),
                     "precision_at_5_same_show": round(float(same_src[sel].mean()), 4)}
    # episode level: do semantic IDs keep the shows apart at the first code?
    ids = [ep["id"] for ep in eps]
    _, sid = semantic_ids(ids, np.stack([f.embedding for f in feats]))
    first = {}
    for ep in eps:
        first.setdefault(sid[ep["id"]][0], set()).add(ep["source"])
    out["semantic_ids"] = {"episodes": len(ids), "unique": len(set(sid.values())) == len(ids),
                           "with_suffix": sum(len(v) > 3 for v in sid.values()),
                           "first_codes": len(first), "first_codes_mixing_shows": sum(len(v) > 1 for v in first.values())}
    return out


# -- 5. the similarity floor ---------------------------------------------------------------------
def similarity_floor(eps: list[dict], feats: list[EpisodeFeatures]) -> dict:
    sys.path.insert(0, str(ROOT / "tests"))
    from test_features import corpus  # the tests' 12 episodes: four topics, three each

    from mediaflow.recommend import MIN_SIMILARITY

    tests = corpus()
    vecs = np.stack([f.embedding for f in feats] + [f.embedding for f in tests.values()])
    group = [ep["source"] for ep in eps] + ["tests:" + k.split("-")[0] for k in tests]
    sims = vecs @ vecs.T
    pairs: dict[str, list[float]] = {}
    for i in range(len(group)):
        for j in range(i + 1, len(group)):
            a, b = group[i], group[j]
            if a.startswith("tests:") and b.startswith("tests:"):
                kind = "tests, same topic (related)" if a == b else "tests, other topic (unrelated)"
            elif a.startswith("tests:") or b.startswith("tests:"):
                kind = "dev vs tests (unrelated)"
            else:
                kind = "dev, same show" if a == b else "dev, the other show"
            pairs.setdefault(kind, []).append(float(sims[i, j]))
    out: dict = {"min_similarity": MIN_SIMILARITY, "pairs": {}}
    for kind, xs in pairs.items():
        x = np.array(xs)
        out["pairs"][kind] = {"pairs": len(x),
                              **{f"p{p}": round(float(np.percentile(x, p)), 3) for p in (0, 5, 50, 95, 100)},
                              "at_or_above_floor": int((x >= MIN_SIMILARITY).sum())}
    n = len(eps)
    dev = sims[:n, :n] - 2 * np.eye(n)
    kept = (dev >= MIN_SIMILARITY).sum(1)
    out["dev_neighbours_kept"] = {"of": n - 1, "min": int(kept.min()), "median": float(np.median(kept)),
                                  "nearest_min": round(float(dev.max(1).min()), 3)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=0, help="dev episodes per source (0 = all)")
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--audio-hours", type=float, default=1.0)
    ap.add_argument("--skip-audio", action="store_true")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads (0 = torch's default); 1 is faster on a machine shared with other jobs")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "features.json"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    result: dict = {"features_version": FEATURES_VERSION, "torch_threads": torch.get_num_threads(),
                    "cpu_cores": os.cpu_count(), "load_average_at_start": os.getloadavg()}

    if EVAL.is_dir():
        from mediaflow.embed import get_embedder

        embedder = get_embedder()
        embedder.encode(["warm up"])
        eps = load_dev(args.limit)
        result["text"], feats = bench_text(eps, embedder)
        result["chapter_neighbours"] = chapter_neighbours(eps, feats)
        result["similarity_floor"] = similarity_floor(eps, feats)
    else:
        print(f"{EVAL} not found: the text-feature and chapter-neighbour parts need ../shared/eval "
              "(not shipped with the project); skipping them.")
    if not args.skip_audio:
        result["audio"] = bench_audio(args.audio_hours)
    result["latency"] = bench_latency([int(s) for s in args.sizes.split(",") if s])

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, default=str))
    print_tables(result)
    print(f"\nJSON: {args.out}")


def print_tables(r: dict) -> None:
    if "text" in r:
        print("\n| text features | episodes | hours | wall s / audio hour | CPU s / audio hour |\n|---|---|---|---|---|")
        for k, v in r["text"].items():
            print(f"| {k} | {v['episodes']} | {v['hours']} | {v['wall_s_per_hour']} | {v['cpu_s_per_hour']} |")
    if "audio" in r:
        a = r["audio"]
        print("\n| audio descriptors | value |\n|---|---|")
        for k, v in a.items():
            print(f"| {k} | {v} |")
    print("\n| catalogue | search p50 ms | search p95 ms | similar() p50 ms | similar() p95 ms "
          "| recommend (10 history) p50 ms |\n|---|---|---|---|---|---|")
    for n, v in r["latency"].items():
        print(f"| {int(n):,} | {v['search_p50_ms']} | {v['search_p95_ms']} | {v['similar_p50_ms']} "
              f"| {v['similar_p95_ms']} | {v['recommend_10_history_p50_ms']} |")
    if "chapter_neighbours" in r:
        print("\n| chapter neighbours | chapters | P@5 same episode | chance | lift | P@5 same show |\n|---|---|---|---|---|---|")
        for k, v in r["chapter_neighbours"].items():
            if k != "semantic_ids":
                print(f"| {k} | {v['chapters']} | {v['precision_at_5_same_episode']} | {v['chance_same_episode']} "
                      f"| {v['lift']}x | {v['precision_at_5_same_show']} |")
        print(f"\nsemantic IDs on the dev episodes: {r['chapter_neighbours']['semantic_ids']}")
    if "similarity_floor" in r:
        f = r["similarity_floor"]
        print(f"\n| episode pairs (cosine) | pairs | min | p5 | median | p95 | max | >= floor {f['min_similarity']} |"
              "\n|---|---|---|---|---|---|---|---|")
        for k, v in f["pairs"].items():
            print(f"| {k} | {v['pairs']} | {v['p0']} | {v['p5']} | {v['p50']} | {v['p95']} | {v['p100']} "
                  f"| {v['at_or_above_floor']} |")
        kept = f["dev_neighbours_kept"]
        print(f"\neach dev episode keeps at least {kept['min']} of its {kept['of']} others above the floor "
              f"(median {kept['median']}); every nearest neighbour is at least {kept['nearest_min']} alike")


if __name__ == "__main__":
    main()
