"""Chapter titles by keyphrase extraction: what this chapter says that the rest of the episode doesn't.

Candidates are 1–3-word phrases that neither start nor end with a stopword. They are ranked by a
TF-IDF across the episode's chapters, then re-ranked by how close their embedding is to the
chapter and how far from the whole episode. Titles are title-cased, at most 40 characters, and
unique within the episode.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

MAX_TITLE = 40
SPONSORS = "Sponsors"  # a chapter of sponsor reads: "Sponsors" or "Sponsors: A, B"

STOPWORDS = frozenset("""
a about above after again against all also am an and any are aren't as at be because been before being
below between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down
during each even ever every few for from further get gets getting got had hadn't has hasn't have haven't
having he he'd he'll he's her here here's hers herself him himself his how how's i i'd i'll i'm i've if
in into is isn't it it's its itself just let's like made make makes many may me might more most much must
mustn't my myself no nor not now of off on once one only or other ought our ours ourselves out over own
per perhaps quite rather really same say says said see seen shan't she she'd she'll she's should shouldn't
so some such than that that's the their theirs them themselves then there there's these they they'd
they'll they're they've this those through thus to too under until up upon us use used using very via was
wasn't we we'd we'll we're we've well were weren't what what's when when's where where's whether which
while who who's whom why why's will with within without won't would wouldn't yes yet you you'd you'll
you're you've your yours yourself yourselves
""".split())

# Spoken-language filler that makes a poor title.
FILLER = frozenset("""
um uh oh okay ok yeah yep right gonna wanna gotta kind sort thing things stuff lot lots actually basically
literally maybe probably pretty know think thought mean means going want wants wanted today really
something someone somebody anything everything everyone way ways time times people person guys folks
example examples talk talking call called little big good great new first second third next last
""".split())

# The only function words allowed inside a title phrase: "Theory of Mind", "Smell and Taste".
CONNECTORS = frozenset("of and for in on to vs with by from the".split())

_TOKEN = re.compile(r"[A-Za-z][A-Za-z'’\-]*[A-Za-z]|[A-Za-z]|\d+(?:\.\d+)?")
_SMALL = frozenset("a an and as at but by for in of on or the to vs via with".split())


@dataclass
class TitleOptions:
    max_candidates: int = 20  # per chapter, after TF-IDF, before embedding
    episode_weight: float = 0.0  # how much closeness to the whole episode counts against a phrase
    tfidf_weight: float = 0.6
    multiword_bonus: float = 0.15
    pair: bool = True  # join the two best distinct phrases: "Melatonin & Serotonin"
    pair_max_similarity: float = 0.5  # ... unless they say the same thing


def _bad_edge(tok: str) -> bool:
    t = tok.lower().replace("’", "'")
    return t in STOPWORDS or t in FILLER or t.isdigit() or len(t) < 3 or (t.endswith("ly") and len(t) > 4)


def _bad_end(tok: str) -> bool:
    # "Melatonin Is Released", "Neuromodulator That's Released": a participle ends a clause, not a topic
    t = tok.lower()
    return t.endswith("ed") and not tok[:1].isupper() and len(t) > 4


def _bad_inside(tok: str) -> bool:
    t = tok.lower().replace("’", "'")
    return (t in STOPWORDS and t not in CONNECTORS) or t in FILLER or "'" in t


def candidates(sentences: list[str]) -> tuple[Counter, dict[str, str]]:
    """Phrase counts (lowercase key) and the surface form first seen for each phrase."""
    counts: Counter = Counter()
    surface: dict[str, str] = {}
    for sent in sentences:
        toks = _TOKEN.findall(sent)
        low = [t.lower().replace("’", "'") for t in toks]
        for n in (1, 2, 3):
            for i in range(len(toks) - n + 1):
                if _bad_edge(toks[i]) or _bad_edge(toks[i + n - 1]) or (n > 1 and _bad_end(toks[i + n - 1])):
                    continue
                if any(_bad_inside(w) for w in toks[i + 1 : i + n - 1]):
                    continue
                if any(w in FILLER for w in low[i : i + n]):
                    continue
                key = " ".join(low[i : i + n])
                counts[key] += 1
                surface.setdefault(key, " ".join(toks[i : i + n]))
    return counts, surface


def title_case(phrase: str) -> str:
    words = phrase.split()
    out = []
    for i, w in enumerate(words):
        if w.isupper() and len(w) > 1:  # acronyms stay
            out.append(w)
        elif i > 0 and w.lower() in _SMALL:
            out.append(w.lower())
        else:
            out.append(w[:1].upper() + w[1:])
    return " ".join(out)


def shorten(title: str, limit: int = MAX_TITLE) -> str:
    if len(title) <= limit:
        return title
    cut = title[: limit + 1].rsplit(" ", 1)[0].rstrip(",;:&-–— ")
    return cut if cut else title[:limit]


def make_titles(
    chapter_texts: list[list[str]],
    chapter_vecs: np.ndarray,
    episode_vec: np.ndarray,
    embed,
    opts: TitleOptions = TitleOptions(),
) -> list[str]:
    """One title per chapter. `embed(list[str]) -> unit vectors`; `chapter_vecs` are unit centroids."""
    per_chapter = [candidates(c) for c in chapter_texts]
    df: Counter = Counter()
    for counts, _ in per_chapter:
        df.update(set(counts))
    n_ch = len(chapter_texts)
    shortlists: list[list[tuple[str, float]]] = []
    for counts, _ in per_chapter:
        scored = []
        for key, tf in counts.items():
            n_words = key.count(" ") + 1
            idf = math.log(1 + n_ch / df[key])
            scored.append((key, (1 + math.log(tf)) * idf * (1 + opts.multiword_bonus * (n_words - 1))))
        scored.sort(key=lambda kv: -kv[1])
        shortlists.append(scored[: opts.max_candidates])
    keys = sorted({k for sl in shortlists for k, _ in sl})
    vec = dict(zip(keys, embed(keys))) if keys else {}

    titles: list[str] = []
    used: set[str] = set()
    for idx, sl in enumerate(shortlists):
        if not sl:
            titles.append(_unique(f"Part {idx + 1}", used))
            continue
        top = max(s for _, s in sl) or 1.0
        ranked = sorted(
            sl,
            key=lambda kv: -(
                float(vec[kv[0]] @ chapter_vecs[idx])
                - opts.episode_weight * float(vec[kv[0]] @ episode_vec)
                + opts.tfidf_weight * kv[1] / top
            ),
        )
        surface = per_chapter[idx][1]
        choice = None
        for key, _ in ranked:
            t = shorten(title_case(surface[key]))
            if t.lower() not in used:
                choice = t
                break
        if choice and opts.pair:
            first = next(k for k, _ in ranked if shorten(title_case(surface[k])) == choice)
            words = set(choice.lower().split())
            for key, _ in ranked[:5]:
                other = title_case(surface[key])
                redundant = float(vec[key] @ vec[first]) > opts.pair_max_similarity  # "Alcohol & Booze"
                if not redundant and not words & set(other.lower().split()) and len(choice) + 3 + len(other) <= MAX_TITLE:
                    choice = f"{choice} & {other}"
                    break
        titles.append(_unique(choice or f"Part {idx + 1}", used))
    return titles


def _unique(title: str, used: set[str]) -> str:
    base, n = title, 2
    while title.lower() in used:
        suffix = f" ({n})"
        title = shorten(base, MAX_TITLE - len(suffix)) + suffix
        n += 1
    used.add(title.lower())
    return title


# A sign-off: thanks, credits, where to support or subscribe.
_OUTRO = re.compile(
    r"\b(thanks? (you )?(so much )?for (watching|listening|joining|tuning)|see you (next|in the next)|until next time|"
    r"(this|the) (episode|show|podcast) was (written|produced|edited|directed)|(written|produced|edited|directed) by|"
    r"subscribe|patreon|leave (us )?a review|support (the|this|our) (podcast|show|channel))\b",
    re.IGNORECASE,
)
_SPONSOR = re.compile(r"\b(brought to you by|sponsors?( of)?|sponsored by)\b", re.IGNORECASE)
_SPONSOR_NAME = re.compile(r"brought to you by ([A-Z][\w&'.\-]*(?: [A-Z][\w&'.\-]*){0,2})")


def name_conventional_chapters(titles: list[str], chapter_texts: list[list[str]], opts) -> list[str]:
    """Name the parts every podcast has the way creators do: introduction, sponsor reads, sign-off."""
    out = list(titles)
    n = len(out)
    if n < 3:
        return out
    if opts.sponsor_titles:
        for i, sents in enumerate(chapter_texts[1:], 1):
            hits = [s for s in sents if _SPONSOR.search(s)]
            if len(hits) >= max(1, 0.3 * len(sents)):
                names = list(dict.fromkeys(m.group(1).rstrip(".") for s in hits for m in _SPONSOR_NAME.finditer(s)))
                out[i] = shorten(f"{SPONSORS}: " + ", ".join(names)) if names else SPONSORS
    if opts.intro_title:
        out[0] = opts.intro_title
    if opts.outro_title:
        last = chapter_texts[-1]
        hits = [bool(_OUTRO.search(s)) for s in last]
        # a sign-off at the very end, and enough of it that the chapter is the sign-off, not a topic
        # that happens to end with "thanks for listening"
        if any(hits[-12:]) and sum(hits) >= max(1, 0.2 * len(last)):
            out[-1] = opts.outro_title
    used: set[str] = set()
    return [_unique(t, used) for t in out]
