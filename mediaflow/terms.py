"""What an episode is about, in words: keyphrases (KeyBERT-style) and named entities.

Keyphrases: 1–3-word candidates that neither start nor end with a stopword, a number or a verb,
and do not cross punctuation (noun-phrase-like, without a tagger), shortlisted by frequency,
then scored by the cosine between the phrase's embedding and the document's, plus a small
frequency prior, and picked by maximal marginal relevance so the list is not five spellings of
one idea (Grootendorst's KeyBERT; Carbonell & Goldstein 1998 for MMR).

Entities: runs of capitalised words in the transcript ("Albert Bandura", "Stanford University",
"ENIAC"). A sentence's first word is only counted where the same word is also capitalised
mid-sentence, or where it is never said in lowercase and another capital follows, and a single word must be capitalised more often than not, so "Coffee" opening a
sentence about coffee is not a name. A surname alone ("Bandura") counts toward the full name
said elsewhere. No types (person, place): that would need a tagger. spaCy's en_core_web_sm was
tried on the dev episodes and was not clearly better on spoken text ("n't" as a place, "upbeat
guitar music" as an organisation) for 17 more packages, so names alone it is.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from mediaflow.chapters.titles import FILLER, STOPWORDS

_TOKEN = re.compile(r"[A-Za-z][A-Za-z'’\-]*[A-Za-z0-9]|[A-Za-z]|\d+")
_CONNECT = frozenset({"of", "de", "da", "van", "von", "the", "du", "la", "del"})
_INSIDE = frozenset({"of", "and", "for", "in", "on", "the", "to", "&"})  # stopwords a phrase may hold
_NUMBERS = frozenset("""
zero two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen
eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand million billion
half dozen
""".split())
# Spoken text is full of clauses; without a tagger, these verbs mark a candidate as one.
_VERB_LEMMAS = """
add allow appear ask become begin believe bring build buy call change choose come consider continue create
cut decide describe design die do drink eat end expect explain fall feel fill find finish focus follow
forget get give go grow happen hear help hold include invent keep kill know lead learn leave let like live
look lose love make matter mean meet move need notice offer open pass pay predict prove pull put raise
reach read realize remain remember replace report require rise run save say see seem sell send serve set
show sign sing sit sleep speak spend stand start stay stop suggest take talk teach tell tend think throw
try turn understand use wait walk want watch win wonder work write load steep spread
"""
_IRREGULAR = """
came went grew gone grown saw seen made took taken gave given found told became left brought wrote written
sat stood lost paid met led understood began begun ran kept held fell fallen won sold spoke spoken rose
risen built sent spent thought felt knew known taught thrown threw chose chosen ate eaten drank drunk
sang sung swam drove driven flew flown broke broken caught struck hit develop develops developed
often always never usually sometimes already whereas whilst although though unless since thanks
"""
_LY_NOUNS = frozenset("family assembly supply ally belly bully fly jelly lily rally reply anomaly monopoly italy "
                      "butterfly july holly melancholy".split())


def _inflect(lemma: str) -> set[str]:
    stem = lemma[:-1] if lemma.endswith("e") else lemma
    third = lemma + ("es" if lemma.endswith(("s", "sh", "ch", "x", "o")) else "s")
    if lemma.endswith("y") and lemma[-2] not in "aeiou":
        third, stem_ed = lemma[:-1] + "ies", lemma[:-1] + "ied"
    else:
        stem_ed = stem + "ed"
    return {lemma, third, stem_ed}


_VERBISH = frozenset(
    {f for lemma in _VERB_LEMMAS.split() for f in _inflect(lemma)} | set(_IRREGULAR.split())
)
_NOT_NAMES = frozenset("""
monday tuesday wednesday thursday friday saturday sunday january february march april may june july
august september october november december mr mrs ms dr so and but or now well okay yes no oh hi hey
ok today tonight tomorrow yesterday first second third god
""".split())


@dataclass
class Term:
    """A keyphrase or an entity with its relevance score and how often it was said."""

    text: str
    score: float
    count: int = 1

    def to_dict(self) -> dict:
        return {"text": self.text, "score": self.score, "count": self.count}

    @classmethod
    def from_dict(cls, d: dict) -> "Term":
        return cls(str(d["text"]), float(d["score"]), int(d.get("count", 1)))


def normalize(phrase: str) -> str:
    """A matching key: lowercase, straight apostrophes, no possessive, crude singular per word."""
    out = []
    for w in phrase.lower().replace("’", "'").split():
        w = re.sub(r"'s$", "", w).strip("'\"-.,;:!?()[]")
        if len(w) > 4 and w.endswith("ies"):
            w = w[:-3] + "y"
        elif len(w) > 4 and w.endswith(("oes", "ches", "shes", "xes", "sses")):
            w = w[:-2]
        elif len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
            w = w[:-1]
        if w:
            out.append(w)
    return " ".join(out)


def _bad_edge(low: str) -> bool:
    return (low in STOPWORDS or low in FILLER or low in _NUMBERS or low in _VERBISH or low.isdigit()
            or len(low) < 3 or (len(low) >= 5 and low.endswith("ed") and not low.endswith("eed"))
            or (len(low) >= 5 and low.endswith("ly") and low not in _LY_NOUNS))


_BREAK = re.compile(r"[,.;:!?()\[\]\"“”…—–]|\s-+\s")


def _runs(sentence: str, possessive: bool = False) -> list[list[str]]:
    """Tokens of each punctuation-free stretch: neither phrases nor names run across a comma."""
    out = []
    for part in _BREAK.split(sentence):
        toks = _TOKEN.findall(part)
        if not possessive:
            toks = [re.sub(r"['’]s$", "", t) for t in toks]
        if toks:
            out.append(toks)
    return out


def _key(tok: str) -> str:
    return re.sub(r"'s$", "", tok.lower().replace("’", "'"))


def phrase_candidates(sentences: list[str], max_words: int = 3) -> tuple[Counter, dict[str, str]]:
    """Noun-phrase-like n-grams: counts by lowercase key, and the first surface form of each.

    A phrase neither starts nor ends with a stopword, filler, number or verb, holds no verb, and
    holds only the stopwords that join nouns ("species of coffee").
    """
    counts: Counter = Counter()
    surface: dict[str, str] = {}
    runs = [(r, k == 0) for sent in sentences for k, r in enumerate(_runs(sent, possessive=True))]
    said_lower = {normalize(t) for r, _ in runs for t in r if t[:1].islower()}
    for toks, first in runs:
        low = [_key(t) for t in toks]
        for n in range(1, max_words + 1):
            for i in range(len(toks) - n + 1):
                w = low[i : i + n]
                if _bad_edge(w[0]) or _bad_edge(w[-1]):
                    continue
                inner = w[1:-1]
                if any(x in _VERBISH or x in FILLER or (x in STOPWORDS and x not in _INSIDE)
                       or (len(x) >= 5 and x.endswith("ed") and not x.endswith("eed")) for x in inner):
                    continue
                key = " ".join(w)
                counts[key] += 1
                words = toks[i : i + n - 1] + [re.sub(r"['’]s$", "", toks[i + n - 1])]
                if i == 0 and first and words[0][1:].islower() and normalize(low[0]) in said_lower:
                    words[0] = words[0].lower()  # "Coffee plants ..." opening a sentence
                surface.setdefault(key, " ".join(words))
    return counts, surface


def keyphrases(
    sentences: list[str],
    doc_vec: np.ndarray,
    embed,
    top_n: int = 10,
    diversity: float = 0.5,
    max_candidates: int = 200,
    freq_weight: float = 0.1,
) -> list[Term]:
    """Keyphrases of `sentences`, best first. `embed(list[str]) -> unit vectors` (may cache)."""
    counts, surface = phrase_candidates(sentences)
    if not counts:
        return []
    merged: Counter = Counter()
    forms: dict[str, Counter] = {}
    for key, n in counts.items():
        k = normalize(key)
        merged[k] += n
        forms.setdefault(k, Counter())[surface[key]] += n
    # frequency shortlist, longer phrases slightly favoured, ties broken alphabetically for stability
    short = sorted(merged, key=lambda k: (-(1 + math.log(merged[k])) * (1 + 0.15 * k.count(" ")), k))
    short = short[:max_candidates]
    texts = [forms[k].most_common(1)[0][0] for k in short]
    vecs = embed([t.lower() for t in texts])
    sim = vecs @ doc_vec
    tf = np.array([merged[k] for k in short], dtype=np.float64)
    rel = sim + freq_weight * np.log1p(tf) / math.log1p(tf.max())
    picked = mmr(vecs, rel, top_n, diversity)
    return [Term(texts[i], round(float(rel[i]), 4), int(tf[i])) for i in picked]


def mmr(vecs: np.ndarray, relevance: np.ndarray, k: int, diversity: float) -> list[int]:
    """Indices picked by maximal marginal relevance: relevant, and unlike those already picked."""
    if not len(vecs):
        return []
    picked = [int(np.argmax(relevance))]
    max_sim = vecs @ vecs[picked[0]]
    while len(picked) < min(k, len(vecs)):
        score = (1 - diversity) * relevance - diversity * max_sim
        score[picked] = -np.inf
        i = int(np.argmax(score))
        picked.append(i)
        max_sim = np.maximum(max_sim, vecs @ vecs[i])
    return picked


def _is_cap(tok: str) -> bool:
    return tok[:1].isupper() or (tok[:1].isdigit() and len(tok) <= 4)


def entities(sentences: list[str], top_n: int = 15) -> list[Term]:
    """Named entities by capitalisation, most mentioned first; score is relative to the top one."""
    # (tokens, is the first token the sentence's first word) for every punctuation-free run
    runs = [(r, k == 0) for sent in sentences for k, r in enumerate(_runs(sent))]
    mid_caps: Counter = Counter()
    lower: Counter = Counter()
    for ts, first in runs:
        for i, t in enumerate(ts):
            if t[:1].isupper() and (i > 0 or not first):
                mid_caps[t] += 1
            elif t[:1].islower():
                lower[t.lower()] += 1
    found: Counter = Counter()
    for ts, first in runs:
        i = 0
        while i < len(ts):
            if not _starts_name(ts, i, mid_caps, first, lower):
                i += 1
                continue
            j = i + 1
            while j < len(ts):
                low = ts[j].lower().replace("’", "'")
                if _is_cap(ts[j]) and low not in _NOT_NAMES and low not in STOPWORDS:
                    j += 1
                elif ts[j].lower() in _CONNECT and j + 1 < len(ts) and ts[j + 1][:1].isupper():
                    j += 2
                else:
                    break
            name = ts[i:j]
            while name and name[-1].lower() in _CONNECT:
                name.pop()
            if name and _plausible(name, lower, mid_caps):
                found[" ".join(name)] += 1
            i = j
    # a surname alone counts toward the one full name that ends with it
    for name in sorted(found, key=len):
        if " " in name:
            continue
        fulls = [f for f in found if " " in f and f.split()[-1] == name]
        if len(fulls) == 1:
            found[fulls[0]] += found.pop(name)
    if not found:
        return []
    top = 1 + math.log(max(found.values()))
    ranked = sorted(found.items(), key=lambda kv: (-kv[1], -len(kv[0].split()), kv[0]))[:top_n]
    return [Term(name, round((1 + math.log(n)) / top, 4), n) for name, n in ranked]


def _starts_name(ts: list[str], i: int, mid_caps: Counter, sentence_start: bool, lower: Counter) -> bool:
    t = ts[i]
    if not t[:1].isupper() or t.lower() in _NOT_NAMES:
        return False
    low = t.lower().replace("’", "'")
    if low in STOPWORDS or low in FILLER:
        return False
    if i > 0 or not sentence_start or mid_caps[t] > 0:
        return True
    # "Charles Babbage designed ...": a first word never said in lowercase, before another capital
    nxt = ts[i + 1] if i + 1 < len(ts) else ""
    return nxt[:1].isupper() and lower[low] == 0 and nxt.lower() not in STOPWORDS


def _plausible(name: list[str], lower: Counter, mid_caps: Counter) -> bool:
    if len(name) == 1:
        w = name[0]
        if len(w) < 2 or (len(w) < 3 and not w.isupper()):
            return False
        # a common word capitalised now and then ("Coffee" opening a sentence) is not a name
        return w.isupper() or mid_caps[w] > lower[w.lower()]
    return True
