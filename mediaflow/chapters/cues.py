"""Discourse cues: how much more likely a sentence is to open a chapter, from its first words.

"So let's…", "Before we…", "Today you…": creators mark a new chapter with words as well as
with a new topic. The table (`cues.json`) holds smoothed log-odds of a chapter start per opening
word and word pair, fitted on creator-chaptered episodes by `bench/fit_chapter_cues.py`.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

ALPHA = 20  # smoothing: an opening seen fewer times than this leans on the base rate
MIN_SUPPORT = 3
_WORD = re.compile(r"[a-z']+")


def opening(text: str) -> tuple[str, str]:
    """The first word and the first two words of a sentence, lowercased."""
    words = _WORD.findall(text.lower().replace("’", "'"))
    return " ".join(words[:1]), " ".join(words[:2])


@lru_cache(maxsize=1)
def _table() -> dict:
    path = Path(__file__).with_name("cues.json")
    return json.loads(path.read_text()) if path.exists() else {"unigram": {}, "bigram": {}}


def cue_scores(sentences: list[str], table: dict | None = None) -> np.ndarray:
    """Log-odds of a chapter starting at each sentence, against the base rate (0 = no evidence)."""
    t = table or _table()
    out = np.zeros(len(sentences))
    for i, s in enumerate(sentences):
        one, two = opening(s)
        out[i] = t["bigram"].get(two, t["unigram"].get(one, 0.0))
    return out
