"""Content features of an episode and its chapters, for similar episodes and recommendations.

`extract_features` reads a transcript, its chapters and the episode's title (and, if given, the
audio file) and returns an `EpisodeFeatures`:

- embeddings: the transcript is cut into chunks of whole sentences (~100 words, never across a
  chapter boundary) and embedded with the packaged MiniLM; a chapter's vector is the mean of its
  chunks, the episode's is the word-weighted mean of all chunks blended with the title and
  description (`meta_weight`). All vectors are unit length, so a dot product is a cosine.
  `model_id` and `dim` are stored beside them: features made by another model are stale.
- keyphrases (KeyBERT-style, with MMR) for the episode and for each chapter, and named entities
  (see `mediaflow.terms`);
- language, duration, words per minute, and `transcribed_fraction`: the share of the duration
  covered by transcribed words (from word timestamps, else segment times);
- with `audio_path`: loudness, sounding share and a music/speech estimate
  (`mediaflow.audio_features`), streamed so memory stays flat. Its `speech_share_of_sound` is
  another measure: of the audio that is not silent, the share that *sounds* like speech, words or not.

Both fractions used to be called `speech_fraction` (0.61 at the top and 0.93 under `audio` for one
episode); `from_dict` still reads features stored under that name. The values and the
method are the same, so `FEATURES_VERSION` did not change and nothing is recomputed.

JSON: `to_dict()` is JSON-safe. Vectors are stored as base64 of little-endian float32 bytes
(`encode_vector` / `decode_vector`): a 384-d vector is 2 KB of text instead of ~8 KB of decimals,
and it round-trips bit for bit.

`FEATURES_VERSION` names the method; `is_stale` says when stored features should be recomputed.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mediaflow.audio_features import METHOD as AUDIO_METHOD
from mediaflow.audio_features import AudioDescriptors, describe_audio
from mediaflow.errors import InvalidInput
from mediaflow.terms import Term, entities, keyphrases
from mediaflow.transcript import Transcript

# Bump the text part when chunking, keyphrases or entities change; the audio part follows its module.
FEATURES_VERSION = f"text-2+{AUDIO_METHOD}"  # text-2: who speaks (SpeakerFacts)


@dataclass
class FeatureOptions:
    chunk_words: int = 100  # MiniLM reads 256 tokens; ~100 words keeps a chunk on one idea
    meta_weight: float = 0.2  # share of title+description in the episode vector
    keywords: int = 15
    chapter_keywords: int = 5
    entities: int = 15
    diversity: float = 0.5  # MMR: 0 = most relevant only, 1 = most different only
    max_candidates: int = 200  # keyphrase candidates embedded per episode (and per chapter)
    pause_bridge_s: float = 0.3  # gaps between words shorter than this count as speech


def encode_vector(v: np.ndarray) -> str:
    return base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode("ascii")


def decode_vector(s: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(s), dtype="<f4").astype(np.float32)


@dataclass
class ChapterFeatures:
    index: int
    start: float
    end: float
    title: str
    embedding: np.ndarray
    keywords: list[Term] = field(default_factory=list)
    summary: str | None = None  # the chapter's, when the language model wrote one

    def to_dict(self, vectors: bool = True) -> dict:
        d = {"index": self.index, "start": self.start, "end": self.end, "title": self.title,
             "keywords": [k.to_dict() for k in self.keywords]}
        if self.summary:
            d["summary"] = self.summary
        if vectors:
            d["embedding"] = encode_vector(self.embedding)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ChapterFeatures":
        return cls(int(d["index"]), float(d["start"]), float(d["end"]), str(d["title"]),
                   decode_vector(d["embedding"]), [Term.from_dict(k) for k in d.get("keywords", [])],
                   d.get("summary"))


@dataclass
class SpeakerFacts:
    """Who speaks in an episode, for recommendation: how many voices, the host's share of the talk,
    and the named guests. The host is the speaker the feed's `podcast:person` tags call host, else the one
    who opens the episode, as podcast hosts do (the most talkative is often the guest)."""

    count: int
    host: str | None  # the host's name, or None when unnamed
    host_share: float | None  # host talk time / all talk time
    guests: list[str] = field(default_factory=list)  # named speakers other than the host

    @classmethod
    def from_summary(cls, rows: list[dict]) -> SpeakerFacts:
        """From `mediaflow.speakers.summary` rows (in order of first speech)."""
        if not rows:
            return cls(0, None, None, [])
        total = sum(r["talk_time_s"] for r in rows)
        host = next((r for r in rows if r.get("role") == "host"), rows[0])
        return cls(len(rows), host["name"], round(host["talk_time_s"] / total, 3) if total else None,
                   [r["name"] for r in rows if r is not host and r["name"]])

    def to_dict(self) -> dict:
        return {"count": self.count, "host": self.host, "host_share": self.host_share, "guests": list(self.guests)}

    @classmethod
    def from_dict(cls, d: dict) -> SpeakerFacts:
        return cls(int(d["count"]), d.get("host"), d.get("host_share"), list(d.get("guests", [])))


@dataclass
class EpisodeFeatures:
    """Everything recommendation needs to know about one episode's content."""

    version: str
    model_id: str
    dim: int
    title: str
    language: str
    language_probability: float
    duration_s: float
    word_count: int
    words_per_minute: float | None
    transcribed_fraction: float | None  # share of the duration covered by transcribed words (or segments)
    speech_timing: str | None  # "words", "segments" or None: where transcribed_fraction came from
    embedding: np.ndarray
    keywords: list[Term] = field(default_factory=list)
    entities: list[Term] = field(default_factory=list)
    chapters: list[ChapterFeatures] = field(default_factory=list)
    audio: AudioDescriptors | None = None
    speakers: SpeakerFacts | None = None  # None: not diarized

    @property
    def speech_to_silence(self) -> float | None:
        """Seconds inside transcribed words per second outside them (`transcribed_fraction`; None when
        nothing is outside them)."""
        f = self.transcribed_fraction
        return None if f is None or f >= 1.0 else round(f / (1.0 - f), 3)

    def terms(self) -> list[Term]:
        """Entities and keyphrases of the episode and its chapters, each text once."""
        seen, out = set(), []
        for t in [*self.entities, *self.keywords, *(k for c in self.chapters for k in c.keywords)]:
            if t.text.lower() not in seen:
                seen.add(t.text.lower())
                out.append(t)
        return out

    def to_dict(self, vectors: bool = True) -> dict:
        """JSON-safe. `vectors=False` leaves the embeddings out (for people; `from_dict` needs them)."""
        d = {
            "version": self.version, "model_id": self.model_id, "dim": self.dim, "title": self.title,
            "language": self.language, "language_probability": self.language_probability,
            "duration_s": self.duration_s, "word_count": self.word_count,
            "words_per_minute": self.words_per_minute, "transcribed_fraction": self.transcribed_fraction,
            "speech_to_silence": self.speech_to_silence,
            "speech_timing": self.speech_timing, "vector_encoding": "base64-float32-le",
            "embedding": encode_vector(self.embedding),
            "keywords": [k.to_dict() for k in self.keywords],
            "entities": [e.to_dict() for e in self.entities],
            "chapters": [c.to_dict(vectors) for c in self.chapters],
            "audio": self.audio.to_dict() if self.audio else None,
            "speakers": self.speakers.to_dict() if self.speakers else None,
        }
        if not vectors:
            del d["embedding"], d["vector_encoding"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "EpisodeFeatures":
        if d.get("vector_encoding", "base64-float32-le") != "base64-float32-le":
            raise InvalidInput(f"unknown vector encoding {d.get('vector_encoding')!r}")
        return cls(
            version=str(d["version"]), model_id=str(d["model_id"]), dim=int(d["dim"]), title=str(d["title"]),
            language=str(d.get("language", "en")), language_probability=float(d.get("language_probability", 1.0)),
            duration_s=float(d["duration_s"]), word_count=int(d["word_count"]),
            words_per_minute=d.get("words_per_minute"),
            transcribed_fraction=d.get("transcribed_fraction", d.get("speech_fraction")),  # the old name
            speech_timing=d.get("speech_timing"), embedding=decode_vector(d["embedding"]),
            keywords=[Term.from_dict(k) for k in d.get("keywords", [])],
            entities=[Term.from_dict(e) for e in d.get("entities", [])],
            chapters=[ChapterFeatures.from_dict(c) for c in d.get("chapters", [])],
            audio=AudioDescriptors.from_dict(d["audio"]) if d.get("audio") else None,
            speakers=SpeakerFacts.from_dict(d["speakers"]) if d.get("speakers") else None,
        )


def is_stale(version: str | None, model_id: str | None) -> bool:
    """True when features stamped (version, model_id) came from an older method or another embedding
    model, or there are none (None)."""
    from mediaflow.embed import MODEL_ID

    return version != FEATURES_VERSION or model_id != MODEL_ID


def extract_features(
    transcript: Transcript,
    chapters: list | None,
    title: str,
    description: str | None = None,
    audio_path: str | Path | None = None,
    embedder=None,
    options: FeatureOptions | None = None,
    speakers: list[dict] | None = None,
) -> EpisodeFeatures:
    """Features of one episode. `chapters` are `Chapter`s, or dicts with start, end and title;
    `speakers` the episode's `mediaflow.speakers.summary` rows, when it is diarized."""
    from mediaflow.chapters.sentences import from_transcript

    opts = options or FeatureOptions()
    if embedder is None:
        from mediaflow.embed import get_embedder

        embedder = get_embedder()
    sents = from_transcript(transcript)
    if not sents and not (title or "").strip():
        raise InvalidInput("nothing to describe: the transcript is empty and the episode has no title")
    duration = float(transcript.duration or (sents[-1].end if sents else 0.0))

    spans = sorted((_as_chapter(c) for c in chapters or []), key=lambda c: c.start)
    owner = _chapter_of([s.start for s in sents], [c.start for c in spans])
    chunks, chunk_owner, chunk_words = _chunks(sents, owner, opts.chunk_words)
    meta = " ".join(t.strip() for t in (title, (description or "")[:1000]) if t and t.strip())
    vecs = embedder.encode(chunks + ([meta] if meta else []))
    meta_vec = vecs[len(chunks)] if meta else None
    vecs = vecs[: len(chunks)]

    cache: dict[str, np.ndarray] = {}

    def embed(texts: list[str]) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in cache]
        if todo:
            cache.update(zip(todo, embedder.encode(todo)))
        return np.stack([cache[t] for t in texts]) if texts else np.zeros((0, embedder.dim), np.float32)

    if len(chunks):
        content = _unit(np.average(vecs, axis=0, weights=np.asarray(chunk_words, dtype=np.float64)))
        doc = _unit((1 - opts.meta_weight) * content + opts.meta_weight * meta_vec) if meta_vec is not None else content
    else:
        doc = _unit(meta_vec)
    texts = [s.text for s in sents]
    kws = keyphrases(texts, content if len(chunks) else doc, embed, opts.keywords, opts.diversity,
                     opts.max_candidates)
    ents = entities(texts, opts.entities)

    chapter_feats = []
    for i, c in enumerate(spans):
        mine = [j for j, o in enumerate(chunk_owner) if o == i]
        if mine:
            cvec = _unit(np.average(vecs[mine], axis=0, weights=[chunk_words[j] for j in mine]))
        else:  # a chapter with no words in it: its title is all there is
            cvec = embed([c.title or title])[0]
        ctexts = [s.text for s, o in zip(sents, owner) if o == i]
        ckws = keyphrases(ctexts, cvec, embed, opts.chapter_keywords, opts.diversity, opts.max_candidates // 4)
        chapter_feats.append(ChapterFeatures(i, float(c.start), float(c.end), str(c.title), cvec, ckws,
                                             getattr(c, "summary", None)))

    words = transcript.words
    n_words = len(words) if words else sum(len(s.text.split()) for s in sents)
    speech_s, timing = _speech_seconds(transcript, opts.pause_bridge_s)
    audio = describe_audio(audio_path) if audio_path else None
    if audio and audio.duration_s > 0 and not duration:
        duration = audio.duration_s
    return EpisodeFeatures(
        version=FEATURES_VERSION,
        model_id=embedder.model_id,
        dim=int(embedder.dim),
        title=title,
        language=transcript.language,
        language_probability=float(transcript.language_probability),
        duration_s=round(duration, 3),
        word_count=n_words,
        words_per_minute=round(n_words / (duration / 60), 1) if duration > 0 and n_words else None,
        transcribed_fraction=round(min(1.0, speech_s / duration), 4) if duration > 0 and timing else None,
        speech_timing=timing,
        embedding=doc.astype(np.float32),
        keywords=kws,
        entities=ents,
        chapters=chapter_feats,
        audio=audio,
        speakers=SpeakerFacts.from_summary(speakers) if speakers is not None else None,
    )


def _as_chapter(c):
    if isinstance(c, dict):
        from mediaflow.chapters import Chapter

        return Chapter(float(c["start"]), float(c["end"]), str(c.get("title") or ""), c.get("summary"))
    return c


def _chapter_of(starts: list[float], chapter_starts: list[float]) -> list[int]:
    if not chapter_starts:
        return [-1] * len(starts)
    # a sentence belongs to the last chapter that starts before its middle-ish start (+0.5 s slack)
    idx = np.searchsorted(np.asarray(chapter_starts), np.asarray(starts) + 0.5, side="right") - 1
    return [int(max(0, i)) for i in idx]


def _chunks(sents, owner: list[int], max_words: int) -> tuple[list[str], list[int], list[int]]:
    chunks, owners, sizes = [], [], []
    cur: list[str] = []
    n = 0
    for s, o in zip(sents, owner):
        w = len(s.text.split())
        if cur and (o != owners[-1] or n + w > max_words):
            chunks[-1] = " ".join(cur)
            sizes[-1] = n
            cur, n = [], 0
        if not cur:
            chunks.append("")
            owners.append(o)
            sizes.append(0)
        cur.append(s.text)
        n += w
    if cur:
        chunks[-1] = " ".join(cur)
        sizes[-1] = n
    return chunks, owners, sizes


def _speech_seconds(t: Transcript, bridge: float) -> tuple[float, str | None]:
    words = t.words
    if words:
        spans, timing = [(w.start, w.end) for w in words], "words"
    elif t.segments:
        spans, timing = [(s.start, s.end) for s in t.segments], "segments"
    else:
        return 0.0, None
    spans.sort()
    total, (a, b) = 0.0, spans[0]
    for s, e in spans[1:]:
        if s - b <= bridge:
            b = max(b, e)
        else:
            total += b - a
            a, b = s, e
    return total + (b - a), timing


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return (v / n).astype(np.float32) if n > 0 and math.isfinite(n) else np.asarray(v, dtype=np.float32)
