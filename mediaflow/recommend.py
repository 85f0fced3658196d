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
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Iterable, Sequence

import numpy as np

from mediaflow.errors import InvalidInput, NotFound
from mediaflow.features import EpisodeFeatures
from mediaflow.terms import normalize
from mediaflow.vector_index import BruteForceIndex, VectorIndex


@dataclass
class CatalogueItem:
    episode_id: str
    show: str  # show or feed name: the unit of per-show caps and diversity
    title: str
    published_at: datetime | None
    features: EpisodeFeatures
    popularity: float = 0.0  # plays or any other count; used only for the fallback


class Catalogue:
    """The episodes that can be recommended, with a vector index over their embeddings."""

    def __init__(self, items: Iterable[CatalogueItem] = (), index: VectorIndex | None = None):
        self._items: dict[str, CatalogueItem] = {}
        self._index = index
        self._df: Counter = Counter()  # how many episodes have each normalised term
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
            self._df.subtract(_term_keys(old))
        self._items[item.episode_id] = item
        self._df.update(_term_keys(item))
        self.index.upsert([item.episode_id], f.embedding[None, :])

    def remove(self, episode_id: str) -> None:
        old = self._items.pop(episode_id, None)
        if old is not None:
            self._df.subtract(_term_keys(old))
            self.index.remove([episode_id])

    def term_share(self, key: str) -> float:
        """Share of the catalogue's episodes whose terms include `key` (a `normalize`d phrase)."""
        return max(0, self._df[key]) / max(1, len(self._items))


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


# -- similar episodes -----------------------------------------------------------------------------
def similar(episode_id: str, catalogue: Catalogue, k: int = 10,
            exclude: Iterable[str] = ()) -> list[Recommendation]:
    """The `k` episodes closest in content to `episode_id`, best first, each with its reason."""
    src = catalogue.get(episode_id)
    hits = catalogue.index.search(src.features.embedding, k, exclude={episode_id, *exclude})
    out = []
    for tid, sim in hits:
        tgt = catalogue.get(tid)
        reason = explain_pair(src, tgt, catalogue, kind="similar")
        reason.similarity = reason.score = round(sim, 4)
        out.append(Recommendation(tid, tgt.title, tgt.show, round(sim, 4), reason))
    return out


def explain_pair(src: CatalogueItem, tgt: CatalogueItem, catalogue: Catalogue, kind: str) -> Reason:
    """The structured reason `tgt` follows `src`: shared terms and the best chapter pair."""
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
    return r


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
    key = normalize(text)
    if key and key in normalize(item.show):
        return True
    return len(catalogue) >= 4 and catalogue.term_share(key) > 0.5


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
    known = [h for h in hist if h.episode_id in catalogue][-opts.max_history:]

    # 1. candidates: best weighted similarity to any history item, and which item that was
    best: dict[str, tuple[float, float, float, HistoryItem]] = {}  # id -> (weighted, sim, weight, src)
    for age, h in enumerate(reversed(known)):
        item = catalogue.get(h.episode_id)
        w = _completion(h, item, opts.min_weight) * opts.history_decay**age
        for cid, sim in catalogue.index.search(item.features.embedding, opts.candidates_per_item, blocked):
            if cid not in best or w * sim > best[cid][0]:
                best[cid] = (w * sim, sim, w, h)

    # 2. ranking with freshness, then MMR with a same-show penalty; 3. caps
    ids = list(best)
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
        for rec in fallback(catalogue, len(catalogue), None, blocked | {r.episode_id for r in out}, now):
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
    blocked = set(exclude)
    pool = [it for it in catalogue.items() if it.episode_id not in blocked]
    popular = any(it.popularity > 0 for it in pool)
    oldest = datetime.min.replace(tzinfo=timezone.utc)

    def key(it: CatalogueItem):
        published = _aware(it.published_at) or oldest
        return (-it.popularity if popular else 0.0, -published.timestamp(), it.episode_id)

    out, taken = [], Counter()
    for it in sorted(pool, key=key):
        if len(out) >= k:
            break
        if per_show_cap is not None and taken[it.show] >= per_show_cap:
            continue
        taken[it.show] += 1
        fresh = _freshness(it.published_at, now, RecommendOptions.freshness_half_life_days)
        reason = Reason("popular" if popular else "newest", it.episode_id, it.title, it.show,
                        freshness=round(fresh, 4), score=round(it.popularity if popular else fresh, 4))
        out.append(Recommendation(it.episode_id, it.title, it.show, reason.score, reason))
    return out


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
