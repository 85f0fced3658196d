"""Auto-chapters, PODTILE-style: topic boundaries on sentence starts, and short distinct titles.

Titles are written by the local language model (`mediaflow.llm`, with a one-sentence summary per
chapter) when it is installed, else extracted as keyphrases; `ChapterOptions.titles` chooses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

from mediaflow import llm
from mediaflow.chapters.abstractive import AbstractiveOptions, write_chapters, write_episode_summary
from mediaflow.chapters.cues import cue_scores
from mediaflow.chapters.segment import METHOD as SEGMENTATION
from mediaflow.chapters.segment import SegmentOptions, boundaries
from mediaflow.chapters.sentences import Sentence, from_transcript
from mediaflow.chapters.titles import SPONSORS, TitleOptions, make_titles, name_conventional_chapters
from mediaflow.transcript import Transcript

METHOD = f"{SEGMENTATION}+keyphrase-v2"  # extractive titles
# v7: titles and chapter summaries written with the title adapter (its id names the file and the scale; docs/llm.md)
_ADAPTER = llm.adapter_id(llm.title_adapter_path())
MODEL_METHOD = f"{SEGMENTATION}+{llm.MODEL_NAME}-titles-summaries-" + (f"v7+{_ADAPTER}" if _ADAPTER else "v6")
TITLE_METHODS = ("auto", "model", "extractive")


@dataclass
class Chapter:
    start: float
    end: float
    title: str
    summary: str | None = None  # one or two sentences, when the model wrote them

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["summary"] is None:
            del d["summary"]
        return d


@dataclass
class ChapterOptions:
    segment: SegmentOptions = field(default_factory=SegmentOptions)
    titles: TitleOptions = field(default_factory=TitleOptions)
    intro_title: str | None = "Introduction"  # the opening chapter is called this, as creators do
    outro_title: str | None = "Closing Remarks"  # a last chapter of thanks, credits and sign-off
    sponsor_titles: bool = True  # a chapter of sponsor reads is "Sponsors: A, B"
    # `model`: the language model writes titles and summaries; `auto`: it does when installed. The
    # library's default stays the fast, deterministic keyphrases; the product's is the `chapter_titles` setting.
    title_method: Literal["auto", "model", "extractive"] = "extractive"
    abstractive: AbstractiveOptions = field(default_factory=AbstractiveOptions)


def title_method(options: ChapterOptions | None = None) -> str:
    """`model` or `extractive`: what the options ask for, and what is installed."""
    chosen = (options or ChapterOptions()).title_method
    if chosen not in TITLE_METHODS:
        raise ValueError(f"chapter titles: {chosen!r} is not one of {', '.join(TITLE_METHODS)}")
    if chosen == "auto":
        return "model" if llm.installed() else "extractive"
    return chosen


def method(options: ChapterOptions | None = None) -> str:
    """The method id stored with chapters: a change of it makes the pipeline redo them."""
    return MODEL_METHOD if title_method(options) == "model" else METHOD


def chapterize(
    transcript: Transcript,
    title: str | None = None,
    description: str | None = None,
    embedder=None,
    options: ChapterOptions | None = None,
) -> list[Chapter]:
    """Chapters for a transcript; empty transcripts give []. Title/description steer the segmentation."""
    sents = from_transcript(transcript)
    return chapterize_sentences(sents, transcript.duration, title, description, embedder, options)


def chapterize_sentences(
    sents: list[Sentence],
    duration: float,
    title: str | None = None,
    description: str | None = None,
    embedder=None,
    options: ChapterOptions | None = None,
    cues=None,
    cuts: list[int] | None = None,
) -> list[Chapter]:
    """Chapters for timed sentences. `cues` overrides the per-sentence opening log-odds (benchmarks);
    `cuts` (indices of the sentences that open a chapter) skips the segmentation: those chapters are only titled."""
    opts = options or ChapterOptions()
    if not sents:
        return []
    if embedder is None:
        from mediaflow.embed import get_embedder

        embedder = get_embedder()
    end = duration if duration > 0 else sents[-1].end  # the decoded length: a last word may run past it
    emb = embedder.encode([s.text for s in sents])
    context_text = " ".join(t for t in (title, description) if t)
    context = embedder.encode([context_text])[0] if context_text else None
    if cuts is not None:
        cuts = sorted({0, *(int(c) for c in cuts if 0 < c < len(sents))})
    else:
        cuts = boundaries(
            emb,
            np.array([s.start for s in sents]),
            np.array([s.end for s in sents]),
            np.array([s.pause_before for s in sents]),
            context=context,
            opts=opts.segment,
            cues=cue_scores([s.text for s in sents]) if cues is None else cues,
        )
    spans = list(zip(cuts, cuts[1:] + [len(sents)]))
    texts = [[s.text for s in sents[a:b]] for a, b in spans]
    vecs = np.stack([_unit(emb[a:b].mean(0)) for a, b in spans])
    episode_vec = _unit(emb.mean(0) if context is None else 0.5 * emb.mean(0) + 0.5 * context)
    titles = make_titles(texts, vecs, episode_vec, embedder.encode, opts.titles)
    named = name_conventional_chapters(titles, texts, opts)
    keep = [a != b for a, b in zip(titles, named)]  # Introduction, Sponsors, Closing Remarks keep their names
    titles, summaries = named, [None] * len(named)
    model = _model() if title_method(opts) == "model" else None
    if model is not None:
        titles, summaries = write_chapters(texts, [emb[a:b] for a, b in spans], named, keep, title, description,
                                           model, opts.abstractive)
    starts = [0.0] + [min(_boundary_time(sents, a), end) for a, _ in spans[1:]]
    chapters = [Chapter(round(s, 2), min(round(e, 2), end), t, m)
                for s, e, t, m in zip(starts, starts[1:] + [end], titles, summaries)]
    return [c for c in chapters if c.end > c.start] or chapters[:1]  # none starts where the audio has ended


def _model():
    try:
        return llm.get_llm()
    except Exception:  # a broken install must not cost the episode its chapters: keyphrases it is
        llm.count_fallback("title", "unavailable")
        return None


def summarize_episode(chapters: list[Chapter], title: str | None = None, description: str | None = None,
                      options: ChapterOptions | None = None) -> str | None:
    """A one- or two-sentence summary of the episode from its chapters (None without the model or on failure)."""
    opts = options or ChapterOptions()
    if not chapters or title_method(opts) != "model":
        return None
    model = _model()
    if model is None:
        return None
    # the topics, not the parts every episode has: given the introduction's sponsor reads, the model summarised
    # an episode on dreaming as "Helix Sleep introduces their mattresses"
    topical = [c for c in chapters if not is_conventional(c.title, opts)] or chapters
    return write_episode_summary([c.title for c in topical], [c.summary for c in topical], title, description,
                                 model, opts.abstractive)


def is_conventional(title: str, opts: ChapterOptions) -> bool:
    """Whether a chapter title is one of the conventional names (Introduction, Sponsors…, Closing Remarks)."""
    return title in (opts.intro_title, opts.outro_title) or title.split(":")[0] == SPONSORS


def _boundary_time(sents: list[Sentence], i: int) -> float:
    # Start in the middle of the pause before the sentence, so a player seeking there hears it whole.
    gap = sents[i].pause_before
    return max(0.0, sents[i].start - min(gap / 2, 0.5)) if gap > 0 else sents[i].start


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-9)
