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
import json
import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path

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

# chapters every episode has: nothing to say about why this one
_CONVENTIONAL = re.compile(r"\b(intro(duction)?|outro|sponsors?|ad(vertisement)?s?|credits?|closing|"
                           r"housekeeping|review|recap|wrap[- ]?up|conclusion)\b", re.I)
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


# -- written by the language model ----------------------------------------------------------------
EXPLAIN_SYSTEM = (
    "You finish a short, friendly sentence telling a podcast listener why an episode is recommended to them. "
    "Say what the two episodes share, using only the facts given: name no title, show, topic or person the "
    "facts do not list, and claim nothing else."
)
# The prompt's version: part of every cached sentence's method, so a changed prompt writes them again.
PROMPT_VERSION = "explain-3"  # 3: ", which" opening, first sentence kept
_QUOTE_MARKS = '"“”«»`'


def model_method() -> str:
    from mediaflow import llm

    return f"model:{llm.MODEL_NAME}:{PROMPT_VERSION}"


@dataclass
class Facts:
    """What the model is told about a reason, and the sentence's opening it must continue."""

    text: str  # one fact a line
    opening: str  # "Because you enjoyed “A”, you'll love “B”, which": the titles, in order, as the template writes them
    titles: list[str]
    topics: list[str]
    people: list[str]


def facts(reason: Reason) -> Facts | None:
    """The reason's facts for the model, or None where there is nothing for it to add (no episode heard, or
    nothing the two share): the template says all there is. Only the facts a sentence may use are here, none
    of the scores or the reason's kind, so `/similar` and `/recommendations` get one sentence for a pair."""
    if not reason.source_title or reason.kind in ("popular", "newest"):
        return None
    tgt = short_title(reason.target_title, 48, reason.target_show)
    src = short_title(reason.source_title, 48, reason.source_show)
    show_words = {w for w in re.findall(r"\w+", (reason.target_show or "").lower()) if len(w) > 3}
    topics = [_clean(t) for t in _distinct([t for t in (reason.shared_terms or reason.target_terms) if t.strip()])
              # "episode", "episode of Crash": the show talking about itself
              if not _BOILER.search(t) and not show_words & set(re.findall(r"\w+", t.lower()))][:3]
    people = [clean_title(p) for p in reason.shared_people[:2] if clean_title(p)]
    chapter = short_title(reason.target_chapter, 48) if reason.target_chapter else ""
    if _CONVENTIONAL.search(chapter):  # "Review & Credits" is closest to every episode of its show
        chapter = ""
    if not (topics or people or chapter):
        return None
    show = _clean(reason.target_show)
    # Another show's name is news; the heard episode's own show is not, and a model told it tends to
    # start with "from the show X." and then a second sentence.
    other = show and show.lower() != _clean(reason.source_show or "").lower()
    lines = [f"Episode the listener heard: {_q(src)}",
             f"Recommended episode: {_q(tgt)}" + (f", from the show {show}" if other else "")]
    if topics:
        lines.append(("What both episodes cover: " if reason.shared_terms else "What it covers: ") + ", ".join(topics))
    if people:
        lines.append(f"Both feature: {', '.join(people)}")
    if chapter:
        lines.append(f"Its closest chapter: {_q(chapter)}")
    # The opening is given, not asked for: left to itself this model swaps the two episodes or lower-cases
    # a title (docs/llm.md); it writes the part that says why. Ending it on ", which" keeps that part about
    # the recommended episode: after a bare title the model wrote "as well." and then a second sentence.
    return Facts("\n".join(lines), f"Because you enjoyed {_q(src)}, you'll love {_q(tgt)}, which", [src, tgt],
                 topics, people)


def write_explanation(reason: Reason, model, seed: int | str = 0, max_words: int = 45,
                      timeout_s: float = 30.0) -> Explanation:
    """The reason's sentence by the language model (`mediaflow.llm.LLM`) from `facts(reason)` alone.

    The model continues the opening (both titles, the heard one first, then ", which") with why. Its first
    finished sentence is kept (what it adds after that is dropped); the whole must be at most `max_words`,
    with no quotes, prefix or line break of the model's and no capitalised word the facts do not have. Otherwise, or on a timeout or error, the template's
    sentence is returned and a fallback counted (`llm.count_fallback("explanation", why)`); `template` is
    "model" when the model's sentence is used."""
    return _write(reason, model, seed, max_words, timeout_s)[0]


def _write(reason: Reason, model, seed: int | str = 0, max_words: int = 45,
           timeout_s: float = 30.0) -> tuple[Explanation, str | None]:
    """`write_explanation`, and why the template's sentence was used (None when it was not, or when the
    model had nothing to add)."""
    from mediaflow import llm

    fallback = explain(reason, seed, max_words)
    f = facts(reason)
    if f is None:
        return fallback, None
    try:
        g = model.generate(llm.chat(EXPLAIN_SYSTEM, f.text, f.opening), max_tokens=40, timeout_s=timeout_s,
                           stop=("\n",))
    except Exception:
        llm.count_fallback("explanation", "error")
        return fallback, "error"
    text = check_continuation(f, g.text, max_words)
    if text is None:
        why = "timeout" if g.timed_out else "invalid"
        llm.count_fallback("explanation", why)
        return fallback, why
    low = text.lower()
    return Explanation(text, f.titles, [t for t in f.topics if t.lower() in low],
                       [_clean(reason.target_show)] if _clean(reason.target_show).lower() in low else [],
                       "model"), None


def check_continuation(f: Facts, continuation: str, max_words: int = 45) -> str | None:
    """The opening and the model's continuation as one sentence, or None if it fails a check (see
    `write_explanation`). Public so the checks can be shown failing on a crafted answer."""
    from mediaflow import llm

    tail = continuation.strip()
    if not tail or "\n" in tail:
        return None
    end = re.search(r"[.!?](?=\s+[A-Z“\"']|$)", tail)  # the model's first finished sentence: the rest is dropped
    if end is None:  # cut off by the token cap
        return None
    tail = tail[:end.end()]
    if any(q in tail for q in _QUOTE_MARKS) or len(re.findall(r"\w+", tail)) < 3:
        return None
    text = f.opening + ("" if tail[0] in ",;:—–-" else " ") + tail
    # a title's own full stops ("Brains vs. Bias") are not sentence ends of the model's
    in_opening = len(re.findall(r"[.!?](?:\s|$)", f.opening))
    text = llm.clean_sentence(text, f.text, max_sentences=1 + in_opening, max_words=max_words)
    if text is None or not text.startswith(f.opening):  # clean_sentence dropped a cut-off end, or a prefix
        return None
    return text


# -- the sentence a pair gets, kept -----------------------------------------------------------------
GENERATE_TIMEOUT_S = 300.0  # one sentence in the background; 2.5 min seen on two cores shared by 12 jobs
_inflight: dict[str, Future] = {}
_inflight_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None


def method_for(settings) -> str:
    """"model" or "template": the `explanations` setting, `auto` resolved (the model when installed)."""
    from mediaflow import llm

    if settings.explanations == "auto":
        return "model" if llm.installed() else "template"
    return settings.explanations


def cache_path(reason: Reason, f: Facts, settings) -> Path:
    """Where the model's sentence for these facts is kept: named by the pair (deletes find it) and a hash of
    the facts and the method, so changed facts or a new model or prompt write it again."""
    key = hashlib.sha256(json.dumps([model_method(), f.text]).encode()).hexdigest()[:16]
    return settings.data_path / "explanations" / f"{reason.source_id}--{reason.target_id}--{key}.json"


def sentences(reasons: list[Reason], settings, wait_s: float | None = None) -> list[Explanation]:
    """The sentence for each reason, as the API shows it and the narration speaks it.

    With the template method, `explain`. With the model, a sentence written for the same facts before is read
    back from the data dir; the rest are written one at a time on a background thread, and this waits for
    them at most `wait_s` (`explanation_wait_s`) in all. One not ready by then gets the template's sentence
    (a `timeout` fallback) and is kept when it is written, for the next request; one the checks refuse is
    kept as the template's, so it is not asked for again."""
    from mediaflow import llm

    out = [explain(r) for r in reasons]
    if method_for(settings) != "model":
        return out
    if not llm.installed():
        for _ in reasons:
            llm.count_fallback("explanation", "unavailable")
        return out
    pending = []
    for i, r in enumerate(reasons):
        f = facts(r)
        if f is None:
            continue
        path = cache_path(r, f, settings)
        kept = _read(path)
        if kept is not None:
            out[i] = kept
        else:
            pending.append((i, _submit(r, path, settings)))
    deadline = time.monotonic() + (settings.explanation_wait_s if wait_s is None else wait_s)
    for i, fut in pending:
        try:
            out[i] = fut.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            llm.count_fallback("explanation", "timeout")
        except Exception:  # the model failed to load: the template speaks, and the next request tries again
            llm.count_fallback("explanation", "error")
    return out


def _read(path: Path) -> Explanation | None:
    try:
        d = json.loads(path.read_text())
        return Explanation(d["text"], d["titles"], d["topics"], d["shows"], d["template"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _submit(reason: Reason, path: Path, settings) -> Future:
    global _executor
    with _inflight_lock:
        fut = _inflight.get(str(path))
        if fut is None:
            if _executor is None:
                _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="explain")
            fut = _inflight[str(path)] = _executor.submit(_write_and_keep, reason, path, settings)
        return fut


def _write_and_keep(reason: Reason, path: Path, settings) -> Explanation:
    from mediaflow import llm
    from mediaflow.audio import atomic_write_bytes

    try:
        e, why = _write(reason, llm.get_llm(threads=settings.llm_threads), timeout_s=GENERATE_TIMEOUT_S)
        if why not in ("timeout", "error"):  # a refused answer stays refused (greedy decoding): keep it
            atomic_write_bytes(path, json.dumps({**e.to_dict(), "method": model_method()}).encode())
        return e
    finally:
        with _inflight_lock:
            _inflight.pop(str(path), None)
