"""Nearest neighbours by cosine: the interface, and the embedded brute-force implementation.

`VectorIndex` is what the recommender needs; `BruteForceIndex` keeps the vectors in one float32
matrix and answers with a single matrix-vector product, exact and fast enough for a self-hosted
catalogue (see bench/features.py for latency at 1k–100k episodes). pgvector or FAISS would
implement the same four methods for a larger one.
"""

from __future__ import annotations

from typing import Hashable, Iterable, Protocol, Sequence

import numpy as np

from mediaflow.errors import InvalidInput, NotFound


class VectorIndex(Protocol):
    dim: int

    def upsert(self, ids: Sequence[Hashable], vectors: np.ndarray) -> None: ...

    def remove(self, ids: Iterable[Hashable]) -> None: ...

    def search(self, vector: np.ndarray, k: int = 10,
               exclude: Iterable[Hashable] | None = None) -> list[tuple[Hashable, float]]: ...

    def vector(self, id: Hashable) -> np.ndarray: ...

    def __len__(self) -> int: ...

    def __contains__(self, id: Hashable) -> bool: ...


class BruteForceIndex:
    """Exact cosine search over an in-memory matrix. Vectors are L2-normalised on the way in."""

    def __init__(self, dim: int, capacity: int = 1024):
        self.dim = dim
        self._m = np.zeros((max(1, capacity), dim), dtype=np.float32)
        self._ids: list[Hashable] = []
        self._row: dict[Hashable, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, id: Hashable) -> bool:
        return id in self._row

    @property
    def ids(self) -> list[Hashable]:
        return list(self._ids)

    def add(self, ids: Sequence[Hashable], vectors: np.ndarray) -> None:
        """Insert new ids; an id already present is an error (use `upsert` to replace)."""
        dup = [i for i in ids if i in self._row]
        if dup:
            raise InvalidInput(f"already in the index: {dup[:3]}")
        self.upsert(ids, vectors)

    def upsert(self, ids: Sequence[Hashable], vectors: np.ndarray) -> None:
        v = self._check(vectors, len(ids))
        if len(set(ids)) != len(ids):
            raise InvalidInput("duplicate ids in one upsert")
        new = [i for i in ids if i not in self._row]
        need = len(self._ids) + len(new)
        if need > len(self._m):
            grown = np.zeros((max(need, 2 * len(self._m)), self.dim), dtype=np.float32)
            grown[: len(self._ids)] = self._m[: len(self._ids)]
            self._m = grown
        for i, row in zip(ids, v):
            r = self._row.get(i)
            if r is None:
                r = len(self._ids)
                self._row[i] = r
                self._ids.append(i)
            self._m[r] = row

    def remove(self, ids: Iterable[Hashable]) -> None:
        for i in ids:
            r = self._row.pop(i, None)
            if r is None:
                continue
            last = len(self._ids) - 1
            if r != last:  # move the last row into the hole so the matrix stays dense
                moved = self._ids[last]
                self._m[r] = self._m[last]
                self._ids[r] = moved
                self._row[moved] = r
            self._ids.pop()

    def vector(self, id: Hashable) -> np.ndarray:
        r = self._row.get(id)
        if r is None:
            raise NotFound(f"{id!r} is not in the index")
        return self._m[r].copy()

    def search(self, vector: np.ndarray, k: int = 10,
               exclude: Iterable[Hashable] | None = None) -> list[tuple[Hashable, float]]:
        """The `k` most similar ids, best first, as (id, cosine)."""
        n = len(self._ids)
        if n == 0 or k <= 0:
            return []
        q = self._check(np.asarray(vector)[None, :], 1)[0]
        scores = self._m[:n] @ q
        skip = [self._row[i] for i in (exclude or ()) if i in self._row]
        if skip:
            scores[skip] = -np.inf
        k = min(k, n - len(set(skip)))
        if k <= 0:
            return []
        top = np.argpartition(-scores, k - 1)[:k] if k < n else np.arange(n)
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(self._ids[r], float(scores[r])) for r in top if np.isfinite(scores[r])]

    def _check(self, vectors: np.ndarray, n: int) -> np.ndarray:
        v = np.asarray(vectors, dtype=np.float32)
        if v.ndim != 2 or v.shape != (n, self.dim):
            raise InvalidInput(f"expected {n} vectors of {self.dim} dimensions, got shape {v.shape}")
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        return v / np.where(norms > 0, norms, 1.0)
