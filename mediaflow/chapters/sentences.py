"""Sentences with times: the unit chapters are cut on."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mediaflow.transcript import Transcript

_SPLIT = re.compile(r"(?<=[.!?…])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_END = re.compile(r"[.!?…][\"')\]]*$")
MAX_WORDS = 45  # unpunctuated captions: cut a run-on "sentence" so it still is a usable unit


@dataclass
class Sentence:
    start: float
    end: float
    text: str
    pause_before: float = 0.0  # silence before it, where word timestamps tell


def from_transcript(t: Transcript) -> list[Sentence]:
    """Split a transcript into sentences, timed by word timestamps where present."""
    out: list[Sentence] = []
    for seg in t.segments:
        if seg.words:
            cur: list = []
            for w in seg.words:
                cur.append(w)
                if _END.search(w.text.strip()) or len(cur) >= MAX_WORDS:
                    out.append(_from_words(cur))
                    cur = []
            if cur:
                out.append(_from_words(cur))
        else:
            out.extend(_from_text(seg.start, seg.end, seg.text))
    out = [s for s in out if s.text]
    out = _merge_fragments(out)
    for prev, s in zip(out, out[1:]):
        s.pause_before = max(0.0, round(s.start - prev.end, 3))
    return out


def _from_words(words) -> Sentence:
    return Sentence(start=words[0].start, end=words[-1].end, text="".join(w.text for w in words).strip())


def _from_text(start: float, end: float, text: str) -> list[Sentence]:
    parts = [p.strip() for p in _SPLIT.split(text.strip()) if p.strip()]
    pieces: list[str] = []
    for p in parts:
        words = p.split()
        pieces += [" ".join(words[i : i + MAX_WORDS]) for i in range(0, len(words), MAX_WORDS)]
    total = sum(len(p) for p in pieces) or 1
    out, pos = [], 0
    for p in pieces:
        s = start + (end - start) * pos / total
        pos += len(p)
        out.append(Sentence(start=round(s, 3), end=round(start + (end - start) * pos / total, 3), text=p))
    return out


def _merge_fragments(sents: list[Sentence]) -> list[Sentence]:
    """Caption lines split sentences mid-way; join a piece that does not end a sentence to the next."""
    out: list[Sentence] = []
    for s in sents:
        if out and not _END.search(out[-1].text) and len(out[-1].text.split()) < MAX_WORDS:
            prev = out[-1]
            out[-1] = Sentence(prev.start, s.end, f"{prev.text} {s.text}", prev.pause_before)
        else:
            out.append(s)
    return out
