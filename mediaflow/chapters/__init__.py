"""Auto-chapters, PODTILE-style: topic boundaries on sentence starts, and short distinct titles."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from mediaflow.chapters.cues import cue_scores
from mediaflow.chapters.segment import SegmentOptions, boundaries
from mediaflow.chapters.sentences import Sentence, from_transcript
from mediaflow.chapters.titles import TitleOptions, make_titles, name_conventional_chapters
from mediaflow.transcript import Transcript

METHOD = "embed-kdp-cues+keyphrase-v2"


@dataclass
class Chapter:
    start: float
    end: float
    title: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ChapterOptions:
    segment: SegmentOptions = field(default_factory=SegmentOptions)
    titles: TitleOptions = field(default_factory=TitleOptions)
    intro_title: str | None = "Introduction"  # the opening chapter is called this, as creators do
    outro_title: str | None = "Closing Remarks"  # a last chapter of thanks, credits and sign-off
    sponsor_titles: bool = True  # a chapter of sponsor reads is "Sponsors: A, B"


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
) -> list[Chapter]:
    """Chapters for timed sentences. `cues` overrides the per-sentence opening log-odds (benchmarks)."""
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
    titles = name_conventional_chapters(titles, texts, opts)
    starts = [0.0] + [min(_boundary_time(sents, a), end) for a, _ in spans[1:]]
    chapters = [Chapter(round(s, 2), min(round(e, 2), end), t) for s, e, t in zip(starts, starts[1:] + [end], titles)]
    return [c for c in chapters if c.end > c.start] or chapters[:1]  # none starts where the audio has ended


def _boundary_time(sents: list[Sentence], i: int) -> float:
    # Start in the middle of the pause before the sentence, so a player seeking there hears it whole.
    gap = sents[i].pause_before
    return max(0.0, sents[i].start - min(gap / 2, 0.5)) if gap > 0 else sents[i].start


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(float(np.linalg.norm(v)), 1e-9)
