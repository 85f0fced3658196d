"""Chapter titles and summaries written by the local language model (`mediaflow.llm`), PODTILE-style.

The model sees the episode's title and description, the titles already given to the earlier
chapters, and an excerpt of the chapter (its sentences closest to its centre, in spoken order, up
to `excerpt_words`). It answers with a title of at most six words and a one-sentence summary. Each
answer is validated; a title that fails keeps the extractive one, a summary that fails is left out,
and both count as fallbacks. Episode prompts share their beginning, which the KV cache reuses. Titles and
chapter summaries are written with the title adapter when one is loaded (docs/llm.md, "The title adapter").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from mediaflow import llm

SYSTEM = (
    "You title the chapters of a podcast episode. Answer in two lines:\n"
    "Title: 2 to 5 words naming this chapter's own topic, like a podcaster would write it\n"
    "Summary: one sentence of at most 20 words on what this chapter says\n"
    "Do not reuse the episode's title or an earlier chapter's title. Use only names that appear in the text."
)
EPISODE_SYSTEM = "You summarise podcast episodes. Use only names that appear in the text."
# asked after the chapter lines: asked first (in the system prompt), the model listed every chapter until cut off
EPISODE_ASK = ("In one plain sentence of at most 25 words, what is this episode about? Name its main theme, "
               "not every chapter.")


@dataclass
class AbstractiveOptions:
    excerpt_words: int = 60  # of the chapter's text the model reads: cost grows with it
    description_words: int = 30
    earlier_titles: int = 6  # the last this many titles are shown as context (each costs prompt tokens)
    max_tokens: int = 12  # a title: its line ends the answer's first step
    title_retries: int = 1  # a rejected title is asked again with its first token barred
    summary_tokens: int = 40
    timeout_s: float = 90.0  # one chapter's title, wall clock; past it the extractive title stays
    summaries: bool = True
    group: int = 8  # chapters titled one after another, then summarised together in one batch
    episode_summary_words: int = 12  # of each chapter's summary in the episode summary's prompt
    episode_summary_tokens: int = 48


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


def episode_head(title: str | None, description: str | None, opts: AbstractiveOptions) -> str:
    """The lines every chapter prompt of an episode begins with (the KV cache shares them)."""
    head = f"Episode: {title or 'untitled'}\n"
    if description:
        head += f"About: {llm.trim_words(description, opts.description_words)}\n"
    return head


def title_prompt(head: str, earlier: list[str], number: int, text: str, opts: AbstractiveOptions) -> str:
    """Chapter `number`'s (1-based) title prompt, after the titles given before it; the answer follows `Title:`.
    bench/title_pairs.py builds the title adapter's training prompts with it too."""
    shown = "; ".join(earlier[-opts.earlier_titles:] if opts.earlier_titles else []) or "none"
    return llm.chat(SYSTEM, f"{head}Earlier chapters: {shown}\nChapter {number}: {text}", "Title:")


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
    only its summary is written.

    Titles are written one chapter after another, each seeing the titles before it (PODTILE's context);
    a title's answer stops at its line's end. Every `opts.group` chapters, their summaries are written
    together, in one lock-step batch, each continuing its chapter's prompt and title, which the KV cache
    still holds: the words a summary costs are decoded several at a time."""
    head = episode_head(title, description, opts)
    out_titles, summaries = list(titles), [None] * len(titles)
    pending: list[tuple[int, str, tuple[str, ...]]] = []  # (chapter, its prompt so far, sources)
    for i, sents in enumerate(chapter_texts):
        text = excerpt(sents, chapter_embs[i], opts.excerpt_words)
        prompt = title_prompt(head, out_titles[:i], i + 1, text, opts)
        sources = (text, title or "", description or "", " ".join(sents))
        if keep[i]:  # its name stays: only the summary is asked for
            pending.append((i, f"{prompt} {titles[i]}", sources))
        else:
            banned: tuple[int, ...] = ()
            try:
                for attempt in range(1 + opts.title_retries):
                    g = model.generate(prompt, max_tokens=opts.max_tokens, timeout_s=opts.timeout_s,
                                       stop=("\n",), ban_first=banned, adapter=True)
                    t = None if g.timed_out else accept_title(g.text, sources, out_titles[:i], title,
                                                                cut=g.generated_tokens >= opts.max_tokens)
                    if t or g.timed_out or not g.text.strip():
                        break
                    # Rejected answers are mostly the episode's own title again ("The Bobo Beatdown: Crash
                    # Course Psychology #12"): ask once more, barring how that answer and the episode's title
                    # begin (quoted or not), and the model takes its next-likeliest start.
                    banned += tuple(t for start in _starts(g.text, title) for t in model.first_tokens(start))
            except Exception:
                llm.count_fallback("title", "error")
                continue
            if t:
                out_titles[i] = t
            else:
                llm.count_fallback("title", "timeout" if g.timed_out else "invalid")
            if g.timed_out:
                continue
            pending.append((i, f"{prompt} {g.text}", sources))
        if len(pending) >= opts.group or i == len(chapter_texts) - 1:
            if opts.summaries:
                write_summaries(pending, summaries, model, opts)
            pending = []
            model.forget(keep=llm.chat(SYSTEM, head))  # these chapters' branches are done with
    if opts.summaries and pending:
        write_summaries(pending, summaries, model, opts)
    return out_titles, summaries


def accept_title(raw: str, sources: tuple[str, ...], earlier: list[str], episode_title: str | None,
                 cut: bool = False) -> str | None:
    """The model's title, tidied and title-cased, or None. The model's commonest failure is to answer with
    the episode's own title ("Trauma and Addiction: Crash Course Psychology #31"), often joined by a colon
    to a title of the chapter ("Bobo Beatdown: Brain Signals and Planning"): of the parts either side of a
    colon, the first that passes `llm.clean_title`, is not an earlier chapter's title and is not a run of
    the episode title's words is taken. A part over six words keeps its head (`llm.shorten_title`: "Red
    Light Therapy for Sleep, Learning, and Metabolism" → "Red Light Therapy for Sleep"). `cut`: the answer
    ran into the token cap, so its last part is unfinished ("Memory: Contextual vs. State vs") and only a
    head that ends before its last word can be taken."""
    answer = llm.clean_answer(raw)
    if llm.invented_names(answer, *sources):  # the whole answer: "City of Coffee: Paris" names Paris
        return None
    said = {x.lower() for x in earlier}
    quoted = raw.strip()[:1] in "\"“'‘"  # a line quoted from the chapter, not a title: never cut down to one
    parts = answer.split(":")
    for i, part in enumerate(parts):
        part = part.strip().rstrip(".!;:,")
        head = part if quoted else llm.shorten_title(part, cut=cut and i == len(parts) - 1)
        t = llm.clean_title(head, *sources) if head else None
        if t and t.lower() not in said and not _in_episode_title(t, episode_title):
            return _title_case(t)
    return None


def _starts(answer: str, episode_title: str | None) -> list[str]:
    """How a rejected answer and the episode's title begin, and each of their parts after a colon or a
    dash, with and without a leading "The" and quotes: the beginnings a second ask bars."""
    starts = ['"', "'", "“"]
    for text in (answer, episode_title or ""):
        for part in re.split(r"[:\-–—|]", llm.clean_answer(text)):
            part = part.strip().strip(llm._QUOTES).strip()
            if part:
                starts += [part, re.sub(r"^(?i:the|a|an)\s+", "", part)]
    return starts


def _in_episode_title(t: str, episode_title: str | None) -> bool:
    """True if t's words, numbers and signs left out, run in a row in the episode's title
    ("Crash Course Psychology #13" in "The Bobo Beatdown: Crash Course Psychology #12")."""
    def words(x: str) -> str:
        return " " + " ".join(re.findall(r"[a-z]+(?:'[a-z]+)?", x.lower())) + " "
    w = words(t)
    return w.strip() != "" and w in words(episode_title or "")


def write_summaries(pending: list[tuple[int, str, tuple[str, ...]]], summaries: list[str | None], model: llm.LLM,
                    opts: AbstractiveOptions, adapter: bool = True) -> None:
    """`summaries[i]` for each (i, prompt and title so far, sources) in `pending`, in one batch, checked (None when
    refused). `adapter=False`: the plain model's (bench/title_pairs.py teaches the adapter those)."""
    if not pending:
        return
    try:
        gens = model.generate_batch([f"{p}\nSummary:" for _, p, _ in pending], max_tokens=opts.summary_tokens,
                                    timeout_s=opts.timeout_s * max(1.0, len(pending) / 2), stop=("\n",),
                                    adapter=adapter)  # taught the base model's own summaries, so it keeps them
    except Exception:
        for _ in pending:
            llm.count_fallback("summary", "error")
        return
    for (i, _, sources), g in zip(pending, gens):
        s = llm.clean_sentence(g.text, *sources, max_sentences=2)
        if s is None:
            llm.count_fallback("summary", "timeout" if g.timed_out else "invalid")
        summaries[i] = s


def write_episode_summary(
    titles: list[str], summaries: list[str | None], title: str | None, description: str | None,
    model: llm.LLM, opts: AbstractiveOptions = AbstractiveOptions(),
) -> str | None:
    """One or two sentences for the whole episode from its chapters' titles and the beginnings of their
    summaries (None on failure). The prompt is the cost: each chapter's line is kept short."""
    lines = [f"- {t}: {llm.trim_words(s, opts.episode_summary_words)}" if s else f"- {t}"
             for t, s in zip(titles, summaries)]
    user = f"Episode: {title or 'untitled'}\n"
    if description:
        user += f"About: {llm.trim_words(description, opts.description_words)}\n"
    user += "Chapters:\n" + "\n".join(lines) + "\n" + EPISODE_ASK
    model.forget()  # nothing cached is shared with this prompt, and a full cache makes every token dearer
    try:
        g = model.generate(llm.chat(EPISODE_SYSTEM, user), max_tokens=opts.episode_summary_tokens,
                           timeout_s=opts.timeout_s, stop=("\n",))
    except Exception:
        llm.count_fallback("episode_summary", "error")
        return None
    s = llm.clean_sentence(g.text, user, max_sentences=2, max_words=70)
    if s is None:
        llm.count_fallback("episode_summary", "timeout" if g.timed_out else "invalid")
    return s


def _title_case(t: str) -> str:
    """Capitalise as the extractive titles do, keeping what the model already capitalised (names, acronyms)."""
    words = t.split()
    return " ".join(
        w if (w[:1].isupper() or (i and w.lower() in llm.SMALL_WORDS)) else w[:1].upper() + w[1:]
        for i, w in enumerate(words)
    )
