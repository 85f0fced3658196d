"""One or two sentences saying why an episode is recommended, for the screen or for TTS.

Template-based, so it never invents facts: the only content words are the titles, chapter
titles, show names and terms carried by the `Reason`, which come from the two episodes'
features. Several templates per kind give variety; the choice is a hash of the episode ids and
a seed, so the same pair always reads the same way. Titles are cleaned (quotes, stray
brackets, whitespace) and long ones shortened: show boilerplate ("| Huberman Lab Podcast",
"#12") goes first, then words from the end. Sentences stay under `max_words` (30).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from mediaflow.recommend import Reason
from mediaflow.terms import normalize

TEMPLATES: dict[str, list[str]] = {
    "shared": [
        "Because you listened to {src}, try {tgt} — it also gets into {topics}.",
        "Liked {src}? {tgt} covers {topics} too.",
        "More on {topics}: after {src}, try {tgt}.",
        "{tgt} is a good next listen after {src}: it also covers {topics}.",
    ],
    "target_terms": [
        "Because you listened to {src}, try {tgt} — it gets into {topics}.",
        "After {src}, try {tgt}, which gets into {topics}.",
    ],
    "chapter": [
        "Because you listened to {src}, try {tgt} — its chapter {chapter} is closest to what you heard.",
        "After {src}, try {tgt}; start with its chapter {chapter}.",
    ],
    "bare": [
        "Because you listened to {src}, try {tgt}.",
        "After {src}, try {tgt} next.",
    ],
    "similar_shared": [
        "If you liked {src}, {tgt} also gets into {topics}.",
        "Like {src}, {tgt} covers {topics}.",
    ],
    "similar_target": [
        "If you liked {src}, try {tgt} — it gets into {topics}.",
        "Next after {src}: {tgt}, which gets into {topics}.",
    ],
    "similar_bare": [
        "If you liked {src}, try {tgt}.",
    ],
    "popular": [
        "{tgt} from {show} is popular with listeners right now.",
        "Popular on {show}: {tgt}.",
    ],
    "newest": [
        "New from {show}: {tgt}.",
        "Just out from {show}: {tgt}.",
    ],
}

_BOILER = re.compile(r"podcast|\bepisode\b|\bep\.?\s*\d|#\s*\d|\bseason\s+\d|\bseries\b", re.I)
_SPLIT = re.compile(r"(\s+[|–—-]\s+|:\s+|\s+\|\s*)")
_TAIL = frozenset("a an and as at by for from in of on or the to with vs &".split())


@dataclass
class Explanation:
    text: str
    titles: list[str] = field(default_factory=list)  # as they appear in the text, maybe shortened
    topics: list[str] = field(default_factory=list)
    shows: list[str] = field(default_factory=list)
    template: str = ""

    def __str__(self) -> str:
        return self.text

    def to_dict(self) -> dict:
        return {"text": self.text, "titles": self.titles, "topics": self.topics, "shows": self.shows,
                "template": self.template}


def explain(reason: Reason, seed: int | str = 0, max_words: int = 30) -> Explanation:
    """A sentence for `reason`. The same reason and seed always give the same sentence."""
    if reason.kind in ("popular", "newest"):
        group, topics, chapter = reason.kind, [], None
    elif reason.kind == "similar":
        topics = reason.shared_terms or reason.target_terms
        group = "similar_shared" if reason.shared_terms else "similar_target" if topics else "similar_bare"
        chapter = None
    elif reason.shared_terms:
        group, topics, chapter = "shared", reason.shared_terms, None
    elif reason.target_terms:
        group, topics, chapter = "target_terms", reason.target_terms, None
    elif reason.target_chapter:
        group, topics, chapter = "chapter", [], reason.target_chapter
    else:
        group, topics, chapter = "bare", [], None
    if reason.source_title is None and "{src}" in TEMPLATES[group][0]:
        group, topics, chapter = "newest", [], None
    choices = TEMPLATES[group]
    pick = int(hashlib.sha256(f"{seed}|{reason.source_id}|{reason.target_id}|{group}".encode()).hexdigest(), 16)
    template = choices[pick % len(choices)]
    # short terms read better in a sentence; the order among them is the reason's
    topics = sorted(_distinct([t for t in topics if t.strip()]), key=lambda t: len(t.split()) > 2)

    best = None
    for n_topics in range(min(3, len(topics)), -1, -1):
        if topics and n_topics == 0 and "{topics}" in template:
            break
        for limit in (48, 36, 26, 18):
            parts = _with_people(_render(template, reason, topics[:n_topics], chapter, limit), reason)
            best = parts
            if len(parts.text.split()) <= max_words:
                return parts
    return best


def _with_people(parts: Explanation, reason: Reason) -> Explanation:
    """A guest both episodes have is worth a sentence of its own: "It also features Sarah Mitchell." """
    people = [clean_title(p) for p in getattr(reason, "shared_people", [])[:2] if clean_title(p)]
    if people:
        parts.text = f"{parts.text.rstrip()} It also features {_join(people)}."
    return parts


def _render(template: str, reason: Reason, topics: list[str], chapter: str | None, limit: int) -> Explanation:
    tgt = short_title(reason.target_title, limit, reason.target_show)
    src = short_title(reason.source_title, limit, reason.source_show) if reason.source_title else ""
    chap = short_title(chapter, limit) if chapter else ""
    show = _clean(reason.target_show) or "this show"
    text = template.format(src=_q(src), tgt=_q(tgt), topics=_join(topics), chapter=_q(chap), show=show)
    text = text[0].upper() + text[1:]
    titles = [t for t, slot in ((src, "{src}"), (tgt, "{tgt}"), (chap, "{chapter}")) if slot in template]
    shows = [show] if "{show}" in template else []
    return Explanation(text, titles, list(topics) if "{topics}" in template else [], shows, template)


def clean_title(title: str) -> str:
    """One line, no control characters, inner double quotes made single, wrapping quotes dropped."""
    t = re.sub(r"[\x00-\x1f\x7f]+", " ", title or "")
    t = re.sub(r"\s+", " ", t).strip()
    if len(t) > 1 and t[0] in "\"'“‘" and t[-1] in "\"'”’" and not re.search(r"[\"“”]", t[1:-1]):
        t = t[1:-1].strip()
    return t.replace("“", "‘").replace("”", "’").replace('"', "'")


def short_title(title: str, max_chars: int = 48, show: str | None = None) -> str:
    """`title` cleaned and, if longer than `max_chars`, shortened to its telling part.

    First the parts that are show boilerplate ("| Hot Rocks #12", "(Podcast Ep. 3)") go; then,
    if still too long, the first part that fits ("From Ethiopia to London: a Very Long History");
    else words come off the end and "…" marks the cut.
    """
    t = clean_title(title)
    if len(t) <= max_chars:
        return t
    show_key = normalize(show or "")
    t = re.sub(r"\s*[(\[][^()\[\]]*[)\]]\s*$", lambda m: "" if _boring(m.group(0), show_key) else m.group(0), t)
    pieces = _SPLIT.split(t)  # text, separator, text, ...
    parts, seps = pieces[0::2], pieces[1::2]
    keep = [i for i, p in enumerate(parts) if p.strip() and not _boring(p, show_key)] or [0]
    joined = parts[keep[0]]
    for prev, i in zip(keep, keep[1:]):
        joined += (seps[prev] if i == prev + 1 else " — ") + parts[i]
    joined = joined.strip()
    if len(joined) <= max_chars:
        return _balance(joined)
    fitting = [parts[i].strip() for i in keep if len(parts[i].strip()) <= max_chars and len(parts[i].split()) >= 2]
    if fitting:
        return _balance(fitting[0])
    first = parts[keep[0]].strip()
    return _cut(first if len(first.split()) >= 2 else joined, max_chars)


def _boring(part: str, show_key: str) -> bool:
    return bool(_BOILER.search(part)) or bool(show_key and show_key in normalize(part))


def _cut(t: str, max_chars: int) -> str:
    if len(t) <= max_chars:
        return _balance(t)
    words = t[: max_chars].split(" ")
    if len(words) > 1:
        words = words[:-1]  # drop the word the limit cut through
    while len(words) > 1 and (words[-1].lower() in _TAIL or not re.search(r"\w", words[-1])):
        words.pop()
    out = _balance(" ".join(words).rstrip(",;:-–—&/ "))
    return (out or t[: max_chars - 1]) + "…"


def _balance(t: str) -> str:
    # a cut can leave "(Part" or "[Live": drop from the unclosed bracket on
    for open_, close in ("()", "[]", "{}"):
        if t.count(open_) > t.count(close):
            t = t[: t.rfind(open_)].rstrip(" ,;:-–—")
    return t


def _clean(s: str | None) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[\x00-\x1f\x7f]+", " ", s or "")).strip()


def _q(t: str) -> str:
    return f"“{t}”"


def _join(items: list[str]) -> str:
    items = [_clean(i) for i in items]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _distinct(terms: list[str]) -> list[str]:
    out, keys = [], []
    for t in terms:
        k = normalize(t)
        if k and not any(k in o or o in k for o in keys):
            keys.append(k)
            out.append(t)
    return out


EXPLAIN_SYSTEM = (
    "You write one short, friendly sentence recommending a podcast episode to a listener, such as: "
    "Because you enjoyed <what they heard>, you'll love <recommended episode>, which also covers <topics>. "
    "Use only the facts given, with the titles as written; claim nothing else."
)


def write_explanation(reason: Reason, model, seed: int | str = 0, max_words: int = 30,
                      timeout_s: float = 30.0) -> Explanation:
    """`explain`'s sentence rewritten by the language model (`mediaflow.llm.LLM`) from the reason's facts
    alone. It must name the target by its (shortened) title, after the episode the listener heard where
    there is one (a loose prompt swaps them), be one or two finished sentences of at most
    `max_words` and name nothing the facts do not; otherwise, or on a timeout or error, the template's
    sentence is returned and a fallback counted. `template` is "model" when the model's sentence is used."""
    from mediaflow import llm

    fallback = explain(reason, seed, max_words)
    tgt = short_title(reason.target_title, 48, reason.target_show)
    src = short_title(reason.source_title, 48, reason.source_show) if reason.source_title else ""
    facts = [f"The listener heard: {src}"] if src else []  # first: a loose prompt swaps the two episodes
    facts.append(f"Recommended episode: {tgt}")
    if reason.target_show:
        facts.append(f"Its show: {_clean(reason.target_show)}")
    topics = _distinct([t for t in (reason.shared_terms or reason.target_terms) if t.strip()])[:3]
    if topics:
        facts.append(f"Topics both share: {', '.join(topics)}" if reason.shared_terms else
                     f"Topics it covers: {', '.join(topics)}")
    if reason.target_chapter:
        facts.append(f"Its closest chapter: {short_title(reason.target_chapter, 48)}")
    people = [clean_title(p) for p in reason.shared_people[:2] if clean_title(p)]
    if people:
        facts.append(f"Also features: {', '.join(people)}")
    facts_text = "\n".join(facts)
    try:
        g = model.generate(llm.chat(EXPLAIN_SYSTEM, facts_text), max_tokens=60, timeout_s=timeout_s)
    except Exception:
        llm.count_fallback("explanation", "error")
        return fallback
    text = llm.clean_sentence(g.text, facts_text, max_sentences=2, max_words=max_words)
    low = text.lower() if text else ""
    # both titles, the heard one first: the model must not swap the episodes
    if text is None or tgt.lower() not in low or (src and not 0 <= low.find(src.lower()) < low.find(tgt.lower())):
        llm.count_fallback("explanation", "timeout" if g.timed_out else "invalid")
        return fallback
    return Explanation(text, [tgt], topics if any(t.lower() in text.lower() for t in topics) else [],
                       [_clean(reason.target_show)] if reason.target_show else [], "model")
