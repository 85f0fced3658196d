"""Languages benchmark: English-only tiny.en against the multilingual base (`ASR_MODEL=base`) on the real
speech in ../shared/eval/speech/, WER per language where a reference exists.

    .venv/bin/python bench/languages.py [--eval ../shared/eval] [--out bench/results/languages.json]

multilingual.mp3 reads a text in English, then in German; its reference is the English reading only. The
English passage is the transcript's leading segments that best match it (scored by WER); the German passage
is what follows, reported as seconds kept and the share of its words that are common German words (no
German reference exists, so this is a kept-or-lost check, not a WER).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
os.environ.setdefault("HF_HUB_OFFLINE", "1")

sys.path.insert(0, str(ROOT / "bench"))
from asr import normalise, wer  # noqa: E402  (bench/asr.py)

GERMAN_WORDS = set("der die das und ist nicht ein eine zu mit auf für von dem den des sich oder wird werden "
                   "sind wenn dass als auch es im bei nach so wie aus an sie er wir ihr über".split())


def split_english(segments, reference: str) -> int:
    """How many leading segments make the English passage: the count whose text best matches the reference."""
    best, best_k = 2.0, 0
    for k in range(1, len(segments) + 1):
        w = wer(reference, " ".join(s.text for s in segments[:k]))
        if w < best:
            best, best_k = w, k
    return best_k


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--eval", default=str(ROOT.parent / "shared" / "eval"))
    ap.add_argument("--out", default=str(RESULTS / "languages.json"))
    args = ap.parse_args()
    speech = Path(args.eval) / "speech"
    if not speech.is_dir():
        sys.exit(f"{speech} not found: this benchmark needs the real speech set")
    refs = json.loads((speech / "references.json").read_text())

    from mediaflow.asr import Transcriber
    from mediaflow.audio import probe

    rows = []
    for model in ("tiny.en", "base"):
        t = Transcriber(model=model)
        for name in ("jfk.flac", "multilingual.mp3"):
            path = speech / name
            dur = probe(path).duration_s
            cpu0, t0 = time.process_time(), time.perf_counter()
            tr = t.transcribe(path)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
            row = {"model": model, "input": name, "duration_s": round(dur, 1), "language": tr.language,
                   "rtf": round(wall / dur, 4), "cpu_s": round(cpu, 1)}
            if name == "jfk.flac":
                row["wer_en"] = round(wer(refs[name]["text"], tr.text), 4)
            else:
                k = split_english(tr.segments, refs[name]["text_en"])
                row["wer_en"] = round(wer(refs[name]["text_en"], " ".join(s.text for s in tr.segments[:k])), 4)
                rest = tr.segments[k:]
                words = normalise(" ".join(s.text for s in rest)).split()
                row["second_passage_s"] = round(sum(s.end - s.start for s in rest), 1)
                row["second_passage_german_word_share"] = round(
                    sum(w in GERMAN_WORDS for w in words) / len(words), 3) if words else 0.0
                row["second_passage_start"] = " ".join(s.text for s in rest)[:80]
            rows.append(row)
            print(f"{model} {name}: done", file=sys.stderr)

    cols = ["model", "input", "language", "wer_en", "second_passage_s", "second_passage_german_word_share", "rtf"]
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r.get(c, "–")) for c in cols))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
