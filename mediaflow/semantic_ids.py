"""Semantic IDs: short code tuples for episodes, where a shared prefix means similar content.

Residual k-means, as the semantic IDs of TIGER/GLIDE/NEO are made without training an RQ-VAE:
level 1 clusters the episode embeddings, level 2 clusters what is left after taking out each
vector's level-1 code, and so on. An episode's ID is its code at each level, e.g. (12, 5, 33).

The clustering is spherical: each level clusters the *direction* of the residual, and the
residual loses its length times the chosen unit centroid. Plain residual k-means on sentence
embeddings puts most residuals in one cluster at levels 2 and 3 (28 and 43 of 58 dev episodes
in one code, with 16 codes) and so most IDs differ only in the suffix; on directions every code
is used about equally. Episodes that land on the same codes get a collision suffix, numbered in order
of episode id, so the IDs are unique and a re-run on the same catalogue gives the same IDs.

A `Codebook` is versioned by a hash of its parameters and training data, and saves to one .npz
file written atomically. Tiny catalogues work: a level never has more codes than distinct
vectors, so one episode gets (0, 0, 0).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Hashable, Sequence

import numpy as np

from mediaflow.errors import InvalidInput, NotFound

METHOD = "spherical-residual-kmeans-v1"


@dataclass
class Codebook:
    levels: int
    centroids: list[np.ndarray]  # one (codes, dim) float32 array of unit directions per level
    dim: int
    version: str  # hash of parameters + training data
    params: dict = field(default_factory=dict)
    model_id: str | None = None  # the embedding model the codebook was fitted on
    n_items: int = 0
    method: str = METHOD

    @property
    def codes_per_level(self) -> list[int]:
        return [len(c) for c in self.centroids]

    def save(self, path: str | Path) -> Path:
        """Write to `path` (.npz) atomically: readers see the old codebook or the new one."""
        from mediaflow.audio import atomic_write_bytes

        meta = {"levels": self.levels, "dim": self.dim, "version": self.version, "params": self.params,
                "model_id": self.model_id, "n_items": self.n_items, "method": self.method}
        buf = io.BytesIO()
        np.savez(buf, meta=np.array(json.dumps(meta)),
                 **{f"level{i}": c.astype("<f4") for i, c in enumerate(self.centroids)})
        return atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> "Codebook":
        p = Path(path)
        if not p.is_file():
            raise NotFound(f"no semantic-ID codebook at {p.name}; fit one first")
        try:
            with np.load(p, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                centroids = [z[f"level{i}"].astype(np.float32) for i in range(meta["levels"])]
        except (OSError, KeyError, ValueError) as exc:
            raise InvalidInput(f"{p.name} is not a semantic-ID codebook: {exc}") from exc
        return cls(meta["levels"], centroids, meta["dim"], meta["version"], meta["params"], meta["model_id"],
                   meta["n_items"], meta["method"])


def fit_codebook(
    vectors: np.ndarray,
    levels: int = 3,
    codes_per_level: int | None = None,
    ids: Sequence[Hashable] | None = None,
    seed: int = 0,
    model_id: str | None = None,
) -> Codebook:
    """Fit residual k-means. With `ids`, rows are put in id order first, so order does not matter.

    `codes_per_level` defaults to about 3·n^(1/levels) (at most 256): enough codes that most
    episodes get a unique tuple, few enough that a prefix groups several episodes.
    """
    from sklearn.cluster import KMeans

    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim != 2:
        raise InvalidInput("vectors must be a 2-d array, one row per episode")
    if levels < 1:
        raise InvalidInput("a codebook needs at least one level")
    n, dim = x.shape
    if ids is not None:
        if len(ids) != n:
            raise InvalidInput(f"{len(ids)} ids for {n} vectors")
        order = sorted(range(n), key=lambda i: _id_key(ids[i]))
        x = x[order]
        ids = [ids[i] for i in order]
    k_req = codes_per_level or (min(256, max(2, math.ceil(3 * n ** (1 / levels)))) if n else 0)
    params = {"levels": levels, "codes_per_level": codes_per_level, "k": k_req, "seed": seed}
    h = hashlib.sha256(json.dumps({**params, "method": METHOD, "model_id": model_id}, sort_keys=True).encode())
    h.update(json.dumps([str(i) for i in ids] if ids is not None else None).encode())
    h.update(x.astype("<f4").tobytes())

    residual = x.astype(np.float64)
    centroids = []
    for level in range(levels):
        z = _unit(residual)
        distinct = len(np.unique(np.round(z, 6), axis=0)) if n else 0
        k = min(k_req, distinct)
        if k == 0:
            centroids.append(np.zeros((0, dim), np.float32))
            continue
        if k == 1:
            c = z.mean(0, keepdims=True)
        else:
            c = KMeans(n_clusters=k, n_init=4, random_state=seed + level).fit(z).cluster_centers_
        c = _unit(c)
        if not np.any(np.linalg.norm(c, axis=1)):  # nothing left to encode: any direction will do
            c = np.eye(1, dim)
        centroids.append(c.astype(np.float32))
        residual = _step(residual, c)[1]
    return Codebook(levels, centroids, dim, h.hexdigest()[:16], params, model_id, n)


def _unit(v: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norms > 1e-12, norms, 1.0)


def _step(residual: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes (nearest unit centroid by cosine) and what is left once each code is taken out."""
    codes = np.argmax(_unit(residual) @ centroids.T, axis=1)
    return codes, residual - np.linalg.norm(residual, axis=1, keepdims=True) * centroids[codes]


def assign(codebook: Codebook, vectors: np.ndarray) -> list[tuple[int, ...]]:
    """The code tuple of each vector: the nearest centroid direction at each level, on the residual."""
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if not len(x):
        return []
    if x.shape[1] != codebook.dim:
        raise InvalidInput(f"vectors have {x.shape[1]} dimensions; the codebook was fitted on {codebook.dim}")
    if any(len(c) == 0 for c in codebook.centroids):
        raise InvalidInput("the codebook is empty (fitted on no episodes); fit it on the catalogue first")
    codes = np.zeros((len(x), codebook.levels), dtype=int)
    residual = x.copy()
    for level, c in enumerate(codebook.centroids):
        codes[:, level], residual = _step(residual, c.astype(np.float64))
    return [tuple(int(v) for v in row) for row in codes]


def unique_ids(ids: Sequence[Hashable], codes: Sequence[tuple[int, ...]]) -> dict[Hashable, tuple[int, ...]]:
    """Make code tuples unique: episodes sharing codes get a suffix 0, 1, ... in episode-id order.

    An episode alone on its codes keeps the bare tuple, so adding a suffix never changes the
    prefix, and a prefix search still finds the whole group.
    """
    if len(ids) != len(codes):
        raise InvalidInput(f"{len(ids)} ids for {len(codes)} code tuples")
    groups: dict[tuple, list] = defaultdict(list)
    for i, c in zip(ids, codes):
        groups[tuple(c)].append(i)
    out = {}
    for c, members in groups.items():
        if len(members) == 1:
            out[members[0]] = c
        else:
            for n, i in enumerate(sorted(members, key=_id_key)):
                out[i] = (*c, n)
    return out


def semantic_ids(
    ids: Sequence[Hashable], vectors: np.ndarray, codebook: Codebook | None = None, **fit_options
) -> tuple[Codebook, dict[Hashable, tuple[int, ...]]]:
    """Fit (unless given) a codebook on the catalogue and return it with each episode's unique ID."""
    if codebook is None:
        codebook = fit_codebook(vectors, ids=ids, **fit_options)
    if not len(ids):
        return codebook, {}
    return codebook, unique_ids(ids, assign(codebook, vectors))


def format_id(codes: Sequence[int]) -> str:
    """'12-5-33' (or '12-5-33-1' with a collision suffix): for URLs, logs and database keys."""
    return "-".join(str(int(c)) for c in codes)


def parse_id(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in text.split("-"))
    except ValueError as exc:
        raise InvalidInput(f"{text!r} is not a semantic ID like '12-5-33'") from exc


def _id_key(i: Hashable) -> tuple:
    # ints sort as numbers, everything else as text; mixed catalogues still order deterministically
    return (0, i, "") if isinstance(i, int) and not isinstance(i, bool) else (1, 0, str(i))
