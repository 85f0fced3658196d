"""Chapter titles and summaries written by the local language model (`mediaflow.llm`), PODTILE-style.

The model sees the episode's title and description, the titles already given to the earlier
chapters, and an excerpt of the chapter (its sentences closest to its centre, in spoken order, up
to `excerpt_words`). It answers with a title of at most six words and a one-sentence summary. Each
answer is validated; a title that fails keeps the extractive one, a summary that fails is left out,
and both count as fallbacks. Episode prompts share their beginning, which the KV cache reuses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from mediaflow import llm

SYSTEM = (
    "You write chapter titles and summaries for a podcast episode. Answer in exactly two lines:\n"
    "Title: a chapter title of 2 to 6 words, like a podcaster would write it\n"
    "Summary: one short sentence (at most 15 words) on what this chapter discusses\n"
    "The title names this chapter's topic, not the episode's, and repeats no earlier chapter's title. "
    "Use only names that appear in the text."
)
EPISODE_SYSTEM = (
    "You summarise podcast episodes. Answer with one or two plain sentences saying what the episode "
    "covers. Use only names that appear in the text."
)


@dataclass
class AbstractiveOptions:
    excerpt_words: int = 60  # of the chapter's text the model reads: cost grows with it
    description_words: int = 30
    max_tokens: int = 48  # title + summary
    timeout_s: float = 90.0  # one chapter, wall clock; past it the extractive title stays
    summaries: bool = True


def excerpt(sentences: list[str], emb: np.ndarray, words: int) -> str:
    """The chapter's most central sentences (cosine to its mean embedding), in spoken order, up to `words`."""
    if not sentences:
        return ""
    centre = emb.mean(0)
    order = np.argsort(-(emb @ centre)) if len(sentences) > 1 else np.array([0])
    chosen, n = [], 0
    for i in order:
        w = len(sentences[i].split())
        if n and n + w > words:
            continue
        chosen.append(int(i))
        n += w
        if n >= words:
            break
    text = " ".join(sentences[i] for i in sorted(chosen))
    return " ".join(text.split()[: words + 20])


def _trim(text: str | None, words: int) -> str:
    parts = (text or "").split()
    return " ".join(parts[:words]) + (" …" if len(parts) > words else "")


def _parse(text: str) -> tuple[str, str]:
    title, summary = text, ""
    m = re.search(r"\n\s*summary\s*:\s*(.*)", text, re.IGNORECASE | re.DOTALL)
    if m:
        title, summary = text[: m.start()], m.group(1)
    return title.strip(), summary.strip().split("\n")[0]


def write_chapters(
    chapter_texts: list[list[str]],
    chapter_embs: list[np.ndarray],
    titles: list[str],
    keep: list[bool],
    title: str | None,
    description: str | None,
    model: llm.LLM,
    opts: AbstractiveOptions = AbstractiveOptions(),
) -> tuple[list[str], list[str | None]]:
    """(titles, summaries): the model's where they pass validation, else the given titles and None.
    `keep[i]` marks a conventional chapter (Introduction, Sponsors, Closing Remarks): its name stays,
    only its summary is written."""
    head = f"Episode: {title or 'untitled'}\n"
    if description:
        head += f"About: {_trim(description, opts.description_words)}\n"
    out_titles, summaries = list(titles), []
    for i, sents in enumerate(chapter_texts):
        text = excerpt(sents, chapter_embs[i], opts.excerpt_words)
        earlier = "; ".join(out_titles[:i]) or "none"
        user = (f"{head}Earlier chapters: {earlier}\nChapter {i + 1} says: {text}\n"
                f"Write the title and summary of chapter {i + 1}, about what it says, not the episode.")
        sources = (text, title or "", description or "", " ".join(sents))
        try:
            g = model.generate(llm.chat(SYSTEM, user, "Title:"), max_tokens=opts.max_tokens,
                               timeout_s=opts.timeout_s, stop=("<|im_end|>",))
        except Exception:
            llm.count_fallback("title", "error")
            summaries.append(None)
            continue
        raw_title, raw_summary = _parse(g.text)
        if not keep[i]:
            t = None if g.timed_out and not raw_summary else llm.clean_title(raw_title, *sources)
            if t and t.lower() not in {x.lower() for x in out_titles[:i]} and t.lower() not in (title or "").lower():
                out_titles[i] = _title_case(t)
            else:
                llm.count_fallback("title", "timeout" if g.timed_out else "invalid")
        s = llm.clean_sentence(raw_summary, *sources, max_sentences=2) if opts.summaries else None
        if opts.summaries and s is None:
            llm.count_fallback("summary", "timeout" if g.timed_out else "invalid")
        summaries.append(s)
    return out_titles, summaries


def write_episode_summary(
    titles: list[str], summaries: list[str | None], title: str | None, description: str | None,
    model: llm.LLM, opts: AbstractiveOptions = AbstractiveOptions(),
) -> str | None:
    """One or two sentences for the whole episode from its chapters' titles and summaries (None on failure)."""
    lines = [f"- {t}: {s}" if s else f"- {t}" for t, s in zip(titles, summaries)]
    user = f"Episode: {title or 'untitled'}\n"
    if description:
        user += f"About: {_trim(description, opts.description_words)}\n"
    user += "Chapters:\n" + "\n".join(lines)
    try:
        g = model.generate(llm.chat(EPISODE_SYSTEM, user), max_tokens=60, timeout_s=opts.timeout_s,
                           stop=("<|im_end|>",))
    except Exception:
        llm.count_fallback("episode_summary", "error")
        return None
    s = llm.clean_sentence(g.text, user, max_sentences=2, max_words=70)
    if s is None:
        llm.count_fallback("episode_summary", "timeout" if g.timed_out else "invalid")
    return s


_SMALL = frozenset("a an and as at but by for in of on or the to vs via with".split())


def _title_case(t: str) -> str:
    """Capitalise as the extractive titles do, keeping what the model already capitalised (names, acronyms)."""
    words = t.split()
    return " ".join(
        w if (w[:1].isupper() or (i and w.lower() in _SMALL)) else w[:1].upper() + w[1:]
        for i, w in enumerate(words)
    )
