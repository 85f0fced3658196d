"""The stored episodes as a recommendation catalogue: similar episodes, recommendations, semantic IDs.

Plain functions over the store and `mediaflow.recommend`; the API and the flows call these.
The catalogue (features decoded, vectors indexed) is built once and kept until any episode's
features or metadata change.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mediaflow.config import Settings
from mediaflow.errors import InvalidInput
from mediaflow.explain import sentences
from mediaflow.features import EpisodeFeatures
from mediaflow.recommend import Catalogue, CatalogueItem, Reason, Recommendation, explain_pair, recommend, similar
from mediaflow.semantic_ids import format_id, semantic_ids

_lock = threading.Lock()
_cache: dict[str, tuple[tuple, Catalogue]] = {}


def load_catalogue(settings: Settings) -> Catalogue:
    """Every episode with features, indexed; rebuilt only when the stored features change."""
    from mediaflow.resources import get_store

    store = get_store(settings.db_url)
    stamp = store.catalogue_stamp()
    with _lock:
        hit = _cache.get(settings.db_url)
        if hit and hit[0] == stamp:
            return hit[1]
        items = []
        for ep, row in store.all_features():
            items.append(CatalogueItem(
                episode_id=ep.id, show=ep.show or "", title=ep.title,
                published_at=ep.published_at or ep.created_at, features=EpisodeFeatures.from_dict(row.data),
            ))
        catalogue = Catalogue(items, index=_index(settings, items))
        _cache[settings.db_url] = (stamp, catalogue)
        return catalogue


def _index(settings: Settings, items: list[CatalogueItem]):
    """None (the catalogue's in-memory index) or the pgvector table, emptied of episodes gone since."""
    if settings.vector_index == "memory":
        return None
    if not settings.db_url.startswith("postgresql"):
        raise InvalidInput("vector_index=pgvector needs a PostgreSQL database_url, not "
                           f"{settings.db_url.split(':', 1)[0]}")
    from mediaflow.resources import get_store
    from mediaflow.vector_index_pg import PgVectorIndex

    index = PgVectorIndex(get_store(settings.db_url).engine, dim=items[0].features.dim if items else 384)
    index.retain([it.episode_id for it in items])
    return index


@dataclass
class Suggestion:
    """A recommendation with the sentence that explains it (what the narration speaks)."""

    recommendation: Recommendation
    explanation: str
    explanation_method: str = "template"  # "model": written by the language model from the reason's facts

    def to_dict(self) -> dict:
        return {**self.recommendation.to_dict(), "explanation": self.explanation,
                "explanation_method": self.explanation_method}


def _explained(recs: list[Recommendation], settings: Settings) -> list[Suggestion]:
    """Each with its sentence (`explain.sentences`: the model's, kept per pair, or the template's): the one
    `/similar` and `/recommendations` show and a narration speaks."""
    said = sentences([r.reason for r in recs], settings)
    return [Suggestion(r, e.text, "model" if e.template == "model" else "template") for r, e in zip(recs, said)]


def similar_episodes(episode_id: str, settings: Settings, k: int = 10) -> list[Suggestion]:
    """Nearest episodes by content, each with its reason and explanation."""
    return _explained(similar(episode_id, load_catalogue(settings), k), settings)


def similar_pair(episode_id: str, other_id: str, settings: Settings) -> Suggestion:
    """`other_id` as a similar episode of `episode_id`: the reason and sentence `similar_episodes` gives it,
    for any pair `explain_pair` accepts (not the episode itself, a copy, or one without speech). This is
    the text its narration speaks (`mediaflow.narration`)."""
    catalogue = load_catalogue(settings)
    src, tgt = catalogue.get(episode_id), catalogue.get(other_id)
    reason = explain_pair(src, tgt, catalogue, kind="similar")
    a, b = src.features.embedding, tgt.features.embedding
    reason.similarity = reason.score = round(float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) or 1.0)), 4)
    return _explained([Recommendation(other_id, tgt.title, tgt.show, reason.score, reason)], settings)[0]


def recommend_for(history: list, settings: Settings, k: int = 10, per_show_cap: int | None = 3,
                  exclude: list[str] | tuple = ()) -> list[Suggestion]:
    """Ranked episodes for a listening history (ids, or dicts with fraction/seconds), explained."""
    return _explained(recommend(history, load_catalogue(settings), k, per_show_cap, exclude), settings)


def refresh_semantic_ids(settings: Settings, levels: int = 3) -> dict:
    """Fit the semantic-ID codebook over the catalogue, save it, and give every episode its ID."""
    from mediaflow.resources import get_store

    catalogue = load_catalogue(settings)
    items = catalogue.items()
    ids = [it.episode_id for it in items]
    vectors = np.stack([it.features.embedding for it in items]) if items else np.zeros((0, 384), np.float32)
    codebook, codes = semantic_ids(ids, vectors, levels=levels, model_id=catalogue.model_id)
    path = codebook_path(settings, codebook.version)
    if items and not path.exists():  # the version is a hash of data and parameters: same name, same codebook
        codebook.save(path)
    get_store(settings.db_url).save_semantic_ids({i: format_id(c) for i, c in codes.items()}, codebook.version)
    return {"codebook_version": codebook.version, "episodes": len(ids),
            "collisions": sum(len(c) > levels for c in codes.values()), "path": str(path) if items else None}


def codebook_path(settings: Settings, version: str) -> Path:
    return settings.data_path / "models" / "semantic-ids" / f"codebook-{version}.npz"
