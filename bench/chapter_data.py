"""The creator-chaptered dev episodes (../shared/eval/chapters/dev) as timed sentences with their true
chapters: what bench/chapters.py and bench/segment_split.py score (with the metrics at the end of this
file) and bench/fit_chapter_cues.py fits the opening-cue table on.

An episode is a dict: source, id, title, sentences (`Sentence`s), duration (s), ref (indices of the
sentences that open a creator chapter, always with 0), ref_spans ((start, end) s of each creator
chapter on the sentences' clock), ref_times (creator start times where the captions are timed, else
None), ref_titles, timed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mediaflow.chapters.sentences import Sentence, _from_text, from_transcript  # noqa: E402
from mediaflow.transcript import Segment, Transcript  # noqa: E402

DEV = ROOT.parent / "shared" / "eval" / "chapters" / "dev"  # what the cue table and the settings were fit on
WPM = 160.0  # Huberman text has no times inside chapters: pace it evenly at the episode's own rate


def caption_transcript(d: dict) -> Transcript:
    """A Crash Course episode's caption lines as a transcript: each line lasts until the next starts."""
    lines = d["caption_lines"]
    segs = []
    for i, ln in enumerate(lines):
        end = lines[i + 1]["start"] if i + 1 < len(lines) else d["duration_seconds"]
        segs.append(Segment(i, float(ln["start"]), float(max(end, ln["start"] + 0.5)), ln["text"]))
    return Transcript(segs, "en", float(d["duration_seconds"]), "captions")


def load_crash_course(path: Path) -> dict:
    d = json.loads(path.read_text())
    sents = from_transcript(caption_transcript(d))
    starts = np.array([s.start for s in sents])
    ref = sorted({int(np.argmin(np.abs(starts - c["start"]))) for c in d["chapters"]} | {0})
    return {"source": "crash_course_psych", "id": d["video_id"], "title": d["title"], "sentences": sents,
            "duration": float(d["duration_seconds"]), "ref": ref, "ref_times": [c["start"] for c in d["chapters"]],
            "ref_spans": [(float(c["start"]), float(c["end"])) for c in d["chapters"]],
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
    duration = n_words / rate
    # each creator chapter from its first sentence to the next one's, on the paced clock
    opens = [sents[i].start if i < len(sents) else duration for i in ref]
    return {"source": "huberman_lab", "id": str(d["episode"]), "title": d["title"], "sentences": sents,
            "duration": duration, "ref": sorted(set(ref)), "ref_times": None,
            "ref_spans": list(zip(opens, opens[1:] + [duration])),
            "ref_titles": [c["title"] for c in chapters], "timed": False}


LOADERS = {"crash_course_psych": load_crash_course, "huberman_lab": load_huberman}


def load(root: Path, sources: list[str], limit: int = 0) -> list[dict]:
    """The episodes of `sources` under `root`, in file order; `limit` of each (0 = all)."""
    episodes = []
    for source in sources:
        files = sorted((root / source).glob("*.json"))
        episodes += [LOADERS[source](f) for f in (files[:limit] if limit else files)]
    return episodes


# -- metrics: Pk and WindowDiff in sentence units, boundary F1 in seconds ------------------------------
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
