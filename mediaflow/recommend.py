"""Similar episodes and recommendations for a listener, each with a structured reason.

`similar(episode_id, catalogue, k)`: content neighbours by episode embedding, with the terms the
two share and their best-matching chapter pair.

`recommend(history, catalogue, k)` runs in three stages:

1. candidates: the content neighbours of each history item, weighted by how much of it was
   played (a skipped episode says less than a finished one) and, mildly, by how recent it is;
   a candidate remembers the history item that brought it in;
2. ranking: that similarity plus a freshness bonus (exponential decay by age), then maximal
   marginal relevance so near-duplicates and one show do not fill the list;
3. business rules: nothing heard, nothing excluded, at most `per_show_cap` per show.

An empty history (or one the catalogue does not know) falls back to the most popular episodes
when popularity is known, else the newest; a short candidate list is topped up the same way.
`mediaflow.explain` turns a `Reason` into a sentence.

What is never suggested, by either, nor explained by `explain_pair`:

- the source itself, or an episode heard or excluded;
- an episode without speech (`has_speech`: fewer than `MIN_SPEECH_WORDS` transcribed words; its vector
  is its title alone, so two silent files called "bad ..." look alike). Nor is one a history anchor;
- a neighbour less than `MIN_SIMILARITY` alike (cosine of episode vectors): better a shorter list,
  topped up by the labelled fallback, than "because you listened to" an unrelated episode;
- a copy: two episodes whose content is near-identical (`near_duplicate`: a re-encode or re-upload of
  the same audio) are one; the older copy (published or added first, then the smaller id) stays, and a
  copy of something heard or excluded goes with it.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Iterable, Iterator, Sequence

import numpy as np

from mediaflow.errors import InvalidInput, NotFound
from mediaflow.features import EpisodeFeatures
from mediaflow.terms import normalize
from mediaflow.vector_index import BruteForceIndex, VectorIndex

# Cosine of episode vectors below which two episodes are not suggested as neighbours. Chosen on the
# similarity table of bench/features.py: of 750 pairs on unrelated topics (the tests' four topics
# against each other and against the 58 real dev episodes on psychology and health) none reaches
# 0.30 (95 % are under 0.17; the highest, 0.28 and 0.2996, share "Brazil ... more than any other
# country" and caffeine-and-sleep), while the tests' same-topic pairs are all 0.38 or more and every
# dev episode keeps at least 15 of its 57 others (median 43; nearest neighbours 0.57-0.89).
MIN_SIMILARITY = 0.30
# Fewer transcribed words than this and an episode has no speech to recommend it by: silence, music,
# a tone, or Whisper's stray "you" in the noise.
MIN_SPEECH_WORDS = 10
# Near-identical content (a re-encode of the same audio): content vectors this alike and durations
# within `DUPLICATE_SECONDS` or `DUPLICATE_SHARE` of the longer, whichever is more.
DUPLICATE_COSINE = 0.98
DUPLICATE_SECONDS = 1.0
DUPLICATE_SHARE = 0.01


@dataclass
class CatalogueItem:
    episode_id: str
    show: str  # show or feed name: the unit of per-show caps and diversity
    title: str
    published_at: datetime | None
    features: EpisodeFeatures
    popularity: float = 0.0  # plays or any other count; used only for the fallback


class Catalogue:
    """The episodes that can be recommended, with a vector index over their embeddings.

    Every episode is kept (so its page can ask for neighbours), but only those with speech are
    indexed: an episode without speech is never found as anyone's neighbour.
    """

    def __init__(self, items: Iterable[CatalogueItem] = (), index: VectorIndex | None = None):
        self._items: dict[str, CatalogueItem] = {}
        self._index = index
        self._df: Counter = Counter()  # how many episodes have each normalised term
        self._show_df: dict[str, Counter] = {}  # ... per show
        self._show_n: Counter = Counter()  # episodes per show
        self._content: dict[str, np.ndarray] = {}  # `content_vector`s, made on first use
        self.model_id: str | None = None
        self.dim: int | None = None
        for it in items:
            self.upsert(it)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, episode_id: str) -> bool:
        return episode_id in self._items

    def items(self) -> list[CatalogueItem]:
        return list(self._items.values())

    def get(self, episode_id: str) -> CatalogueItem:
        try:
            return self._items[episode_id]
        except KeyError:
            raise NotFound(f"episode {episode_id!r} is not in the catalogue (no features yet?)") from None

    @property
    def index(self) -> VectorIndex:
        if self._index is None:
            self._index = BruteForceIndex(self.dim or 0, capacity=max(16, len(self._items)))
        return self._index

    def upsert(self, item: CatalogueItem) -> None:
        f = item.features
        if self.model_id is None:
            self.model_id, self.dim = f.model_id, f.dim
        elif (f.model_id, f.dim) != (self.model_id, self.dim):
            raise InvalidInput(
                f"episode {item.episode_id!r} has features from {f.model_id} ({f.dim}-d) but the catalogue "
                f"uses {self.model_id} ({self.dim}-d); recompute its features")
        old = self._items.get(item.episode_id)
        if old is not None:
            self._count(old, -1)
        self._items[item.episode_id] = item
        self._count(item, 1)
        self._content.pop(item.episode_id, None)
        if has_speech(f):
            self.index.upsert([item.episode_id], f.embedding[None, :])
        else:  # and out, if an earlier version of it was in
            self.index.remove([item.episode_id])

    def remove(self, episode_id: str) -> None:
        old = self._items.pop(episode_id, None)
        self._content.pop(episode_id, None)
        if old is not None:
            self._count(old, -1)
            self.index.remove([episode_id])

    def _count(self, item: CatalogueItem, sign: int) -> None:
        keys = Counter({k: sign for k in _term_keys(item)})
        self._df.update(keys)
        self._show_df.setdefault(item.show or "", Counter()).update(keys)
        self._show_n[item.show or ""] += sign

    def content(self, episode_id: str) -> np.ndarray:
        """The episode's `content_vector`, kept until its features change."""
        v = self._content.get(episode_id)
        if v is None:
            v = self._content[episode_id] = content_vector(self.get(episode_id).features)
        return v

    def term_share(self, key: str) -> float:
        """Share of the catalogue's episodes whose terms include `key` (a `normalize`d phrase)."""
        return max(0, self._df[key]) / max(1, len(self._items))

    def show_term_share(self, key: str, show: str) -> tuple[float, int]:
        """Share of `show`'s episodes whose terms include `key`, and how many episodes the show has."""
        n = self._show_n[show or ""]
        return max(0, self._show_df.get(show or "", Counter())[key]) / max(1, n), n


def _term_keys(item: CatalogueItem) -> set[str]:
    return {normalize(t.text) for t in item.features.terms()}


@dataclass
class Reason:
    """Why an episode is suggested. Every text in it comes from the two episodes' features."""

    kind: str  # "because_you_listened", "similar", "popular" or "newest"
    target_id: str
    target_title: str
    target_show: str
    source_id: str | None = None
    source_title: str | None = None
    source_show: str | None = None
    shared_terms: list[str] = field(default_factory=list)  # the target's terms the source also has
    target_terms: list[str] = field(default_factory=list)  # the target chapter's keyphrases
    source_chapter: str | None = None  # best-matching chapter pair, by embedding
    target_chapter: str | None = None
    chapter_similarity: float | None = None
    shared_people: list[str] = field(default_factory=list)  # named speakers of the target the source also has
    similarity: float | None = None  # episode cosine
    weight: float | None = None  # the history item's weight (completion x recency)
    freshness: float | None = None
    score: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Reason":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class Recommendation:
    episode_id: str
    title: str
    show: str
    score: float
    reason: Reason

    def to_dict(self) -> dict:
        return {"episode_id": self.episode_id, "title": self.title, "show": self.show, "score": self.score,
                "reason": self.reason.to_dict()}


@dataclass
class HistoryItem:
    """One listened episode. `fraction` (0–1) or `seconds` played; neither means finished."""

    episode_id: str
    fraction: float | None = None
    seconds: float | None = None
    played_at: datetime | None = None  # when given, orders the history; else the list is oldest first


@dataclass
class RecommendOptions:
    candidates_per_item: int = 50
    max_history: int = 50  # the most recent items that generate candidates
    min_weight: float = 0.1  # a barely started episode still counts a little
    history_decay: float = 0.95  # each older history item counts this much less
    freshness_weight: float = 0.1
    freshness_half_life_days: float = 90.0
    diversity: float = 0.25  # MMR: share of the score given to being unlike what is already picked
    same_show_penalty: float = 0.03  # per episode of the same show already picked
    min_similarity: float = MIN_SIMILARITY  # a candidate less alike than this to its history item is dropped


# -- what may be suggested ------------------------------------------------------------------------
def has_speech(f: EpisodeFeatures) -> bool:
    """Whether the transcript has words enough (`MIN_SPEECH_WORDS`) to say what the episode is about."""
    return f.word_count >= MIN_SPEECH_WORDS


def content_vector(f: EpisodeFeatures) -> np.ndarray:
    """What the episode says, without its title and description (which the episode vector blends in,
    and a re-upload may change): its chapters' vectors weighted by their length, else the episode's."""
    if not f.chapters:
        return f.embedding
    weights = np.array([max(c.end - c.start, 1e-3) for c in f.chapters])
    v = weights @ np.stack([c.embedding for c in f.chapters])
    n = float(np.linalg.norm(v))
    return (v / n).astype(np.float32) if n > 0 and math.isfinite(n) else f.embedding


def near_duplicate(a: EpisodeFeatures, b: EpisodeFeatures, a_content: np.ndarray | None = None,
                   b_content: np.ndarray | None = None) -> bool:
    """Whether two episodes are one content: the same audio re-encoded or re-uploaded.

    Both must hold: durations within `DUPLICATE_SECONDS` (or `DUPLICATE_SHARE` of the longer), and
    content vectors (`content_vector`) at least `DUPLICATE_COSINE` alike. Two different episodes of a
    show, or a short cut of a long one, fail one or the other.
    """
    if not _same_length(a.duration_s, b.duration_s):
        return False
    ca = content_vector(a) if a_content is None else a_content
    cb = content_vector(b) if b_content is None else b_content
    return float(ca @ cb) >= DUPLICATE_COSINE


def _same_length(da: float, db: float) -> bool:
    return abs(da - db) <= max(DUPLICATE_SECONDS, DUPLICATE_SHARE * max(da, db))


def check_pair(src: CatalogueItem, tgt: CatalogueItem) -> None:
    """Refuse (`InvalidInput`) a pair that cannot be explained: an episode and itself (or its copy),
    or one without speech."""
    if src.episode_id == tgt.episode_id:
        raise InvalidInput(f"{src.title!r} and {tgt.title!r} are the same episode ({src.episode_id}): "
                           "a recommendation pairs two different episodes")
    for it in (src, tgt):
        if not has_speech(it.features):
            raise InvalidInput(f"episode {it.episode_id} ({it.title!r}) has no speech "
                               f"({it.features.word_count} words): nothing to recommend it by")
    if near_duplicate(src.features, tgt.features):
        raise InvalidInput(f"{tgt.title!r} is a copy of {src.title!r} (the same content): "
                           "a recommendation pairs two different episodes")


def _age(item: CatalogueItem) -> tuple[float, str]:
    published = _aware(item.published_at) or datetime.min.replace(tzinfo=timezone.utc)
    return published.timestamp(), item.episode_id


def _distinct(ids: list[str], catalogue: Catalogue, anchors: Iterable[str] = ()) -> list[str]:
    """`ids` in their order, less copies (`near_duplicate`): of an anchor (the source, what was heard
    or excluded), or of an older id in the list: of several copies, the oldest (`_age`) stays."""
    if not ids:
        return []
    anchors = [a for a in dict.fromkeys(anchors) if a in catalogue]
    everyone = [*ids, *anchors]
    durs = [catalogue.get(i).features.duration_s for i in everyone]
    order = sorted(range(len(everyone)), key=durs.__getitem__)
    copies: dict[int, set[int]] = {}
    start = 0
    for end in range(1, len(order) + 1):  # runs of durations each within reach of the last: copies share one
        if end < len(order) and _same_length(durs[order[end - 1]], durs[order[end]]):
            continue
        run, start = order[start:end], end
        if len(run) < 2:
            continue
        vecs = np.stack([catalogue.content(everyone[r]) for r in run])
        for a, b in zip(*np.nonzero(np.triu(vecs @ vecs.T >= DUPLICATE_COSINE, 1))):
            a, b = run[a], run[b]
            if _same_length(durs[a], durs[b]):
                copies.setdefault(a, set()).add(b)
                copies.setdefault(b, set()).add(a)
    n = len(ids)
    kept = set(range(len(everyone))) - set(copies)  # episodes without a copy stay
    kept |= set(range(n, len(everyone)))  # the anchors are taken already
    for i in sorted((i for i in copies if i < n), key=lambda i: _age(catalogue.get(ids[i]))):
        if not copies[i] & kept:
            kept.add(i)
    return [x for j, x in enumerate(ids) if j in kept]


def _copies(item: CatalogueItem, catalogue: Catalogue, depth: int = 8) -> list[CatalogueItem]:
    """The catalogue's other copies of `item`, found among its nearest episodes."""
    out = []
    for cid, _ in catalogue.index.search(item.features.embedding, depth, exclude={item.episode_id}):
        other = catalogue.get(cid)
        if near_duplicate(item.features, other.features, catalogue.content(item.episode_id), catalogue.content(cid)):
            out.append(other)
    return out


# -- similar episodes -----------------------------------------------------------------------------
def similar(episode_id: str, catalogue: Catalogue, k: int = 10, exclude: Iterable[str] = (),
            min_similarity: float = MIN_SIMILARITY) -> list[Recommendation]:
    """The `k` episodes closest in content to `episode_id`, best first, each with its reason.

    Only episodes with speech, at least `min_similarity` alike, and one of each set of copies, never
    a copy of the source: the list may be shorter than `k`, and is empty for an episode without speech.
    """
    src = catalogue.get(episode_id)
    if not has_speech(src.features):
        return []
    blocked = {episode_id, *exclude}
    depth = 2 * k + 8  # room for the copies that go
    while True:
        hits = catalogue.index.search(src.features.embedding, depth, exclude=blocked)
        close = [(t, sim) for t, sim in hits if sim >= min_similarity and has_speech(catalogue.get(t).features)]
        keep = set(_distinct([t for t, _ in close], catalogue, anchors=blocked))
        if len(keep) >= k or len(hits) < depth or hits[-1][1] < min_similarity:
            break
        depth *= 4
    out = []
    for tid, sim in [(t, sim) for t, sim in close if t in keep][:k]:
        tgt = catalogue.get(tid)
        reason = explain_pair(src, tgt, catalogue, kind="similar")
        reason.similarity = reason.score = round(sim, 4)
        out.append(Recommendation(tid, tgt.title, tgt.show, round(sim, 4), reason))
    return out


def explain_pair(src: CatalogueItem, tgt: CatalogueItem, catalogue: Catalogue, kind: str) -> Reason:
    """The structured reason `tgt` follows `src`: shared terms and the best chapter pair.

    A pair `check_pair` refuses (the episode itself, a copy of it, one without speech) raises `InvalidInput`.
    """
    check_pair(src, tgt)
    r = Reason(kind, tgt.episode_id, tgt.title, tgt.show, src.episode_id, src.title, src.show)
    r.shared_terms = shared_terms(src, tgt, catalogue)
    sc, tc, score = best_chapter_pair(src.features, tgt.features)
    terms = tgt.features.chapters[tc].keywords if tc is not None else tgt.features.keywords
    r.target_terms = [t.text for t in terms if not _boilerplate(t.text, catalogue, tgt)]
    if tc is not None:
        r.target_chapter = tgt.features.chapters[tc].title
        r.chapter_similarity = round(score, 4)
    if sc is not None:
        r.source_chapter = src.features.chapters[sc].title
    r.shared_people = shared_people(src, tgt)
    return r


def shared_people(src: CatalogueItem, tgt: CatalogueItem) -> list[str]:
    """The target's named guests who also speak in the source (its host or guests): "also features …"."""
    def people(item: CatalogueItem) -> list[str]:
        facts = item.features.speakers
        return [p for p in ([facts.host] + facts.guests if facts else []) if p]

    theirs = {p.lower() for p in people(src)}
    tgt_facts = tgt.features.speakers
    return [g for g in (tgt_facts.guests if tgt_facts else []) if g.lower() in theirs]


def shared_terms(src: CatalogueItem, tgt: CatalogueItem, catalogue: Catalogue, limit: int = 4) -> list[str]:
    """The target's entities and keyphrases that the source shares, best first.

    Exact matches (after `normalize`) come first, rarest in the catalogue first; then target
    phrases sharing a content word with a source phrase ("coffee beans" ~ "coffee houses"), most
    relevant to the target first. Terms that most of the catalogue has, or
    that name the show, say nothing about why these two belong together and are left out.
    """
    src_terms = src.features.terms()
    src_keys = {normalize(t.text) for t in src_terms}
    src_words = {w for k in src_keys for w in k.split() if len(w) > 3}
    exact, partial = [], []
    for t in tgt.features.terms():
        key = normalize(t.text)
        if not key or _boilerplate(t.text, catalogue, tgt):
            continue
        rarity = catalogue.term_share(key)
        if key in src_keys:
            exact.append((rarity, -t.score, t.text))
        elif src_words & {w for w in key.split() if len(w) > 3}:
            partial.append((-t.score, rarity, t.text))
    picked, seen = [], set()
    for _, _, text in sorted(exact) + sorted(partial):
        key = normalize(text)
        if key not in seen and not any(key in s or s in key for s in seen):
            seen.add(key)
            picked.append(text)
    return picked[:limit]


def _boilerplate(text: str, catalogue: Catalogue, item: CatalogueItem) -> bool:
    """A term that names the show, that most of the catalogue has, or that most of the show's own
    episodes have (its hosts, crew, sponsors and sign-offs recur in every episode: "Nicholas Jenkins",
    "Subbable", "Athletic Greens"), says nothing about why two episodes belong together."""
    key = normalize(text)
    if key and key in normalize(item.show):
        return True
    if len(catalogue) >= 4 and catalogue.term_share(key) > 0.5:
        return True
    share, n = catalogue.show_term_share(key, item.show)
    return n >= 4 and share > 0.5


def best_chapter_pair(a: EpisodeFeatures, b: EpisodeFeatures) -> tuple[int | None, int | None, float]:
    """Indices of the most similar (chapter of a, chapter of b) and their cosine.

    An episode without chapters stands in with its whole-episode vector (index None).
    """
    va = np.stack([c.embedding for c in a.chapters]) if a.chapters else a.embedding[None, :]
    vb = np.stack([c.embedding for c in b.chapters]) if b.chapters else b.embedding[None, :]
    sims = va @ vb.T
    i, j = np.unravel_index(int(np.argmax(sims)), sims.shape)
    return (int(i) if a.chapters else None), (int(j) if b.chapters else None), float(sims[i, j])


# -- recommendations ------------------------------------------------------------------------------
def recommend(
    history: Sequence[HistoryItem | tuple | str | dict],
    catalogue: Catalogue,
    k: int = 10,
    per_show_cap: int | None = 3,
    exclude: Iterable[str] = (),
    now: datetime | None = None,
    options: RecommendOptions | None = None,
) -> list[Recommendation]:
    """Up to `k` episodes for a listener, best first. See the module docstring for the stages."""
    opts = options or RecommendOptions()
    now = _aware(now) or datetime.now(timezone.utc)
    hist = _history(history)
    blocked = {h.episode_id for h in hist} | set(exclude)
    # an episode without speech says nothing about the listener's taste: it brings no candidates
    known = [h for h in hist if h.episode_id in catalogue and has_speech(catalogue.get(h.episode_id).features)]
    known = known[-opts.max_history:]

    # 1. candidates: best weighted similarity to any history item, and which item that was
    best: dict[str, tuple[float, float, float, HistoryItem]] = {}  # id -> (weighted, sim, weight, src)
    for age, h in enumerate(reversed(known)):
        item = catalogue.get(h.episode_id)
        w = _completion(h, item, opts.min_weight) * opts.history_decay**age
        for cid, sim in catalogue.index.search(item.features.embedding, opts.candidates_per_item, blocked):
            if sim < opts.min_similarity:
                break  # best first: the rest are less alike still
            if cid not in best or w * sim > best[cid][0]:
                best[cid] = (w * sim, sim, w, h)

    # 2. ranking with freshness, then MMR with a same-show penalty; 3. caps
    ids = _distinct(list(best), catalogue, anchors=blocked)  # one of each set of copies, none of a heard one
    fresh = {i: _freshness(catalogue.get(i).published_at, now, opts.freshness_half_life_days) for i in ids}
    base = {i: best[i][0] + opts.freshness_weight * fresh[i] for i in ids}
    chosen = _mmr_select(ids, base, catalogue, k, per_show_cap, opts)
    out = []
    for cid in chosen:
        _, sim, w, h = best[cid]
        src, tgt = catalogue.get(h.episode_id), catalogue.get(cid)
        reason = explain_pair(src, tgt, catalogue, kind="because_you_listened")
        reason.similarity, reason.weight = round(sim, 4), round(w, 4)
        reason.freshness, reason.score = round(fresh[cid], 4), round(base[cid], 4)
        out.append(Recommendation(cid, tgt.title, tgt.show, reason.score, reason))

    if len(out) < k:  # empty or unknown history, or a small catalogue: top up with the fallback
        taken = Counter(r.show for r in out)
        picked = blocked | {r.episode_id for r in out}
        for rec in _fallback_order(catalogue, picked, now):
            if len(out) >= k:
                break
            if per_show_cap is None or taken[rec.show] < per_show_cap:
                taken[rec.show] += 1
                out.append(rec)
    return out


def fallback(catalogue: Catalogue, k: int = 10, per_show_cap: int | None = 3, exclude: Iterable[str] = (),
             now: datetime | None = None) -> list[Recommendation]:
    """Most popular first when any popularity is known, else newest first; capped per show."""
    now = _aware(now) or datetime.now(timezone.utc)
    out, taken = [], Counter()
    for rec in _fallback_order(catalogue, set(exclude), now):
        if len(out) >= k:
            break
        if per_show_cap is not None and taken[rec.show] >= per_show_cap:
            continue
        taken[rec.show] += 1
        out.append(rec)
    return out


def _fallback_order(catalogue: Catalogue, blocked: set[str], now: datetime) -> Iterator[Recommendation]:
    """The fallback's episodes in order, made as they are asked for: with speech, not blocked, and one
    of each set of copies (the oldest; none when a copy is blocked). `blocked` grows as they are given."""
    speaking = [it for it in catalogue.items() if has_speech(it.features)]
    pool = [it for it in speaking if it.episode_id not in blocked]
    popular = any(it.popularity > 0 for it in pool)
    lengths = np.sort([it.features.duration_s for it in speaking])

    def key(it: CatalogueItem):
        return (-it.popularity if popular else 0.0, -_age(it)[0], it.episode_id)

    def may_have_copies(it: CatalogueItem) -> bool:  # another episode about as long: worth a search
        d = it.features.duration_s
        reach = max(DUPLICATE_SECONDS, DUPLICATE_SHARE * d / (1 - DUPLICATE_SHARE))
        return np.searchsorted(lengths, d + reach, "right") - np.searchsorted(lengths, d - reach, "left") > 1

    for it in sorted(pool, key=key):
        if it.episode_id in blocked:
            continue
        copies = _copies(it, catalogue) if may_have_copies(it) else []
        if any(c.episode_id in blocked or _age(c) < _age(it) for c in copies):
            continue  # a copy was heard or given, or an older copy stands for it
        blocked.add(it.episode_id)
        fresh = _freshness(it.published_at, now, RecommendOptions.freshness_half_life_days)
        reason = Reason("popular" if popular else "newest", it.episode_id, it.title, it.show,
                        freshness=round(fresh, 4), score=round(it.popularity if popular else fresh, 4))
        yield Recommendation(it.episode_id, it.title, it.show, reason.score, reason)


def _mmr_select(ids: list[str], base: dict[str, float], catalogue: Catalogue, k: int,
                per_show_cap: int | None, opts: RecommendOptions) -> list[str]:
    if not ids:
        return []
    vecs = np.stack([catalogue.get(i).features.embedding for i in ids])
    shows = [catalogue.get(i).show for i in ids]
    rel = np.array([base[i] for i in ids])
    max_sim = np.zeros(len(ids))
    taken: Counter = Counter()
    alive = np.ones(len(ids), dtype=bool)
    chosen: list[str] = []
    while len(chosen) < k and alive.any():
        penalty = np.array([opts.same_show_penalty * taken[s] for s in shows])
        score = (1 - opts.diversity) * rel - opts.diversity * max_sim - penalty if chosen else rel.copy()
        score[~alive] = -np.inf
        i = int(np.argmax(score))
        alive[i] = False
        if per_show_cap is not None and taken[shows[i]] >= per_show_cap:
            continue
        chosen.append(ids[i])
        taken[shows[i]] += 1
        max_sim = np.maximum(max_sim, vecs @ vecs[i])
    return chosen


def _history(history: Sequence) -> list[HistoryItem]:
    items = []
    for h in history:
        if isinstance(h, HistoryItem):
            items.append(h)
        elif isinstance(h, str):
            items.append(HistoryItem(h))
        elif isinstance(h, dict):
            items.append(HistoryItem(str(h["episode_id"]), h.get("fraction"), h.get("seconds"), h.get("played_at")))
        elif isinstance(h, (tuple, list)) and h:
            items.append(HistoryItem(str(h[0]), h[1] if len(h) > 1 else None))
        else:
            raise InvalidInput(f"history entries are episode ids, (id, fraction) or HistoryItem, not {h!r}")
    if any(h.played_at for h in items):
        items.sort(key=lambda h: (_aware(h.played_at) or datetime.min.replace(tzinfo=timezone.utc)).timestamp())
    return items


def _completion(h: HistoryItem, item: CatalogueItem, min_weight: float) -> float:
    if h.fraction is not None:
        c = float(h.fraction)
    elif h.seconds is not None and item.features.duration_s > 0:
        c = float(h.seconds) / item.features.duration_s
    else:
        c = 1.0
    c = min(max(c, 0.0), 1.0) if math.isfinite(c) else 1.0
    return min_weight + (1 - min_weight) * c


def _freshness(published: datetime | None, now: datetime, half_life_days: float) -> float:
    if published is None:
        return 0.0
    age_days = max(0.0, (now - _aware(published)).total_seconds() / 86400)
    return 0.5 ** (age_days / half_life_days)


def _aware(t: datetime | None) -> datetime | None:
    # a naive time is taken as UTC, so stored and computed times compare
    return t.replace(tzinfo=timezone.utc) if t is not None and t.tzinfo is None else t
