"""Ranking episodes for a search a listener types: BM25 over weighted fields (BM25F-lite).

An episode is a dict of field → text. The title weighs most, then the synthetic queries the language
model wrote for the episode (`mediaflow.queries`), then the rest (chapter titles and summaries, the
episode summary, keywords and entities, show, description). A query found whole inside one line of a
field (a listener typing one of the stored queries, one a line) adds that field's weight again. `Store.search_episodes`
and the search benchmark rank with the same function.
"""

from __future__ import annotations

import math
import re
from collections import Counter

WEIGHTS = {"title": 3.0, "queries": 2.0, "chapters": 1.0, "summary": 1.0, "terms": 1.0, "show": 1.0,
           "description": 1.0}
K1, B = 1.2, 0.75
STOP = frozenset("""
a an and are as at be by can do does for from how i in is it its me my of on or the to was what when where
which who why with you your about into vs versus episode podcast
""".split())


def stem(word: str) -> str:
    """Plurals folded: "neurons" is "neuron", "studies" is "study" (enough for titles and queries)."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def words(text: str | None) -> list[str]:
    """The content words of `text`, lower-cased and stemmed, stop words and single letters left out."""
    return [stem(w) for w in re.findall(r"[a-z0-9]+", (text or "").lower()) if w not in STOP and len(w) > 1]


def _phrase(text: str | None) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", (text or "").lower()))


def rank(query: str, docs: dict[str, dict[str, str | None]]) -> list[tuple[str, float]]:
    """(id, score) for every doc with a score above 0, best first (ties keep `docs`' order)."""
    terms = list(dict.fromkeys(words(query)))
    phrase = _phrase(query)
    if not terms and not phrase:
        return []
    tf: dict[str, Counter] = {}
    lengths: dict[str, float] = {}
    for key, fields in docs.items():
        c: Counter = Counter()
        for name, text in fields.items():
            w = WEIGHTS.get(name, 1.0)
            for t in words(text):
                c[t] += w
        tf[key], lengths[key] = c, sum(c.values())
    n = len(docs) or 1
    avg = (sum(lengths.values()) / n) or 1.0
    df = Counter(t for c in tf.values() for t in terms if c[t] > 0)
    idf = {t: math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5)) for t in terms}
    scored = []
    for key, fields in docs.items():
        c, norm = tf[key], K1 * (1 - B + B * lengths[key] / avg)
        s = sum(idf[t] * c[t] * (K1 + 1) / (c[t] + norm) for t in terms if c[t] > 0)
        if phrase and len(phrase) >= 3:
            s += sum(WEIGHTS.get(name, 1.0) for name, text in fields.items()
                     if any(phrase in _phrase(line) for line in (text or "").splitlines()))
        if s > 0:
            scored.append((key, s))
    scored.sort(key=lambda x: -x[1])
    return scored
