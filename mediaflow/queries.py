"""Synthetic search queries, AudioBoost-style: what a listener might type to find an episode.

The local language model (`mediaflow.llm`) reads the episode's title, description and chapters (titles
and summaries) once and lists up to ten short queries. Each is tidied and checked (`clean_queries`):
2 to 8 words, no quotes, no "Query:" or numbering left, no name the inputs do not contain, no repeats.
They are stored with the episode's chapters and searched (`mediaflow.search`). A failure or timeout
gives no queries and counts a fallback (`llm.count_fallback("queries", reason)`, in /metrics).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mediaflow import llm, search

METHOD = "episode-summary+queries-v5"  # with the chapters' method: a change redoes the chapter step
SYSTEM = (
    "You help people find podcast episodes. List 6 different searches that a listener might type into a "
    "podcast app to find this episode: each 2 to 6 words, one per line, no numbering, no quotes. Write the "
    "topics and questions people search for, in plain words, not the titles. For an episode on baking bread "
    "they might be:\nhow to make sourdough\nwhy bread goes stale\nyeast and gluten explained\n"
    "Use only names that appear in the text."
)
START = "how "  # the answer's first word
MIN_WORDS, MAX_WORDS, MAX_CHARS, MAX_QUERIES = 2, 8, 70, 10
_MARKER = re.compile(r"^\s*(?:[-*•]+|\d+\s*[.):\-]|\(\d+\))\s*")
_PREFIX = re.compile(r"^\s*(?:search\s+)?(?:query|queries|q)\s*\d*\s*[:\-–—]\s*", re.IGNORECASE)
_QUOTES = "\"'“”‘’«»`*"
_CONVENTIONAL = re.compile(r"^(introduction|closing remarks|sponsors?)\b", re.IGNORECASE)


@dataclass
class QueryOptions:
    chapter_words: int = 300  # of chapter titles and summaries the model reads: cost grows with it
    description_words: int = 40
    max_tokens: int = 80  # six queries of a few words each
    timeout_s: float = 300.0  # wall clock; on a busy 2-core machine one answer took minutes


def _tidy(line: str) -> str:
    prev = None
    while prev != line:
        prev = line
        line = _PREFIX.sub("", _MARKER.sub("", line)).strip().strip(_QUOTES).strip()
    return " ".join(line.rstrip(".?!,;").split())  # the model sometimes doubles its spaces


def clean_queries(text: str, *sources: str, titles: tuple[str, ...] = (), limit: int = MAX_QUERIES) -> list[str]:
    """The acceptable queries among the lines of `text`, tidied, at most `limit`, each once (by its words),
    none a copy of one of `titles`, each with a word of `sources`."""
    out, seen = [], set()
    titles = {" ".join(re.findall(r"[a-z0-9]+", t.lower())) for t in titles}
    known = {w for s in sources for w in search.words(s)}
    for raw in text.splitlines():
        q = _tidy(raw)
        n = len(q.split())
        if not q or n < MIN_WORDS or n > MAX_WORDS or len(q) > MAX_CHARS:
            continue
        if any(c in q for c in _QUOTES + ":;|#") or not re.search(r"[A-Za-z]", q):
            continue  # a heading ("Here are some queries:"), a quote left inside, "#12", or no words at all
        if llm.invented_names(q, *sources):
            continue
        key = " ".join(re.findall(r"[a-z0-9]+", q.lower()))
        if key in seen or key in titles:
            continue  # again, or a title copied: nothing new to search by
        if not set(search.words(q)) & known:
            continue  # about nothing the episode says (the prompt's example, say)
        seen.add(key)
        out.append(q)
        if len(out) >= limit:
            break
    return out


def _prompt(title: str | None, description: str | None, chapters: list, opts: QueryOptions) -> str:
    user = f"Episode: {title or 'untitled'}\n"
    if description:
        user += f"About: {llm.trim_words(description, opts.description_words)}\n"
    parts, budget = [], opts.chapter_words
    for c in chapters:
        t, s = _get(c, "title"), _get(c, "summary")
        if not s and _CONVENTIONAL.match(t or ""):
            continue  # "Introduction", "Closing Remarks": nothing a listener searches for
        part = f"{t} ({s.rstrip('.')})" if s else f"{t}"
        n = len(part.split())
        if parts and n > budget:
            break
        parts.append(part)
        budget -= n
    if parts:  # on one line: given as a list, the model listed the titles back
        user += "It covers: " + "; ".join(parts) + ".\n"
    return user + "Write the search queries, one per line."


def _get(c, key: str):
    return c.get(key) if isinstance(c, dict) else getattr(c, key, None)


def write_queries(model: llm.LLM, title: str | None, description: str | None, chapters: list,
                  opts: QueryOptions | None = None) -> list[str]:
    """The model's queries for an episode (`chapters`: `Chapter`s or dicts with title and maybe summary);
    [] on an error, a timeout or when none passes, each counted as a fallback."""
    opts = opts or QueryOptions()
    user = _prompt(title, description, chapters, opts)
    try:
        # begun for it: without, from titles alone, the model listed the chapter titles back
        g = model.generate(llm.chat(SYSTEM, user, START), max_tokens=opts.max_tokens, timeout_s=opts.timeout_s,
                           stop=("<|im_end|>",))
    except Exception:
        llm.count_fallback("queries", "error")
        return []
    if g.timed_out:
        llm.count_fallback("queries", "timeout")
        return []
    lines = (START + g.text).splitlines()
    if g.generated_tokens >= opts.max_tokens and len(lines) > 1:
        lines = lines[:-1]  # the last line was cut off by the token cap
    titles = (title or "", *(_get(c, "title") or "" for c in chapters))
    found = clean_queries("\n".join(lines), user.rsplit("\n", 1)[0], titles=titles)  # not the instruction's words
    if not found:
        llm.count_fallback("queries", "invalid")
    return found


def episode_queries(title: str | None, description: str | None, chapters: list,
                    opts: QueryOptions | None = None) -> list[str]:
    """`write_queries` with the process's model; [] (counted) when it cannot be loaded."""
    if not chapters and not title:
        return []
    try:
        model = llm.get_llm()
    except Exception:
        llm.count_fallback("queries", "unavailable")
        return []
    return write_queries(model, title, description, chapters, opts)
