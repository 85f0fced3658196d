"""Sentences with times: the unit chapters are cut on."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from mediaflow.transcript import Transcript

_SPLIT = re.compile(r"(?<=[.!?…])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_END = re.compile(r"[.!?…][\"')\]]*$")
MAX_WORDS = 45  # unpunctuated captions: cut a run-on "sentence" so it still is a usable unit


@dataclass
class Sentence:
    start: float
    end: float
    text: str
    pause_before: float = 0.0  # silence before it: from word timestamps, else estimated (`_caption_pauses`)


def from_transcript(t: Transcript) -> list[Sentence]:
    """Split a transcript into sentences, timed by word timestamps where present."""
    out: list[Sentence] = []
    held = _caption_pauses(t.segments)
    for k, seg in enumerate(t.segments):
        first = len(out)
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
        if k and len(out) > first:
            out[first].pause_before = held[k - 1]
    out = [s for s in out if s.text]
    out = _merge_fragments(out)
    for prev, s in zip(out, out[1:]):
        s.pause_before = round(s.pause_before + max(0.0, s.start - prev.end), 3)
    return out


def _caption_pauses(segments) -> list[float]:
    """Seconds each segment without word times lasts beyond what its text needs at the transcript's pace.

    Caption lines run until the next one starts, so a silence (a pause, music, a cut) shows only as a
    line that lasts too long for its words. Segments with word timestamps get 0: their gaps are measured.
    """
    timed = [(s.end - s.start, len(s.text.strip())) for s in segments if not s.words and s.end > s.start]
    if len(timed) < 5:  # too few lines to know the pace
        return [0.0] * len(segments)
    pace = float(np.median([c / d for d, c in timed]))  # characters per second
    if pace <= 0:
        return [0.0] * len(segments)
    return [0.0 if s.words else max(0.0, (s.end - s.start) - len(s.text.strip()) / pace) for s in segments]


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
