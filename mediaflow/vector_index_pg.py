"""`VectorIndex` in PostgreSQL with pgvector: vectors live in a table beside the catalogue.

For a catalogue shared by several API processes, or too large to keep in each one's memory. The
search is exact by default (a sequential scan ordered by cosine distance), so it answers exactly
as `BruteForceIndex` does; `hnsw=True` adds pgvector's approximate HNSW index for large tables.
Ids are stored as text. Needs the `vector` extension on the server (`CREATE EXTENSION` rights or
an extension created beforehand).
"""

from __future__ import annotations

import re
from typing import Hashable, Iterable, Sequence

import numpy as np
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from mediaflow.errors import InvalidInput, NotFound


class PgVectorIndex:
    """Cosine nearest neighbours over a `vector(dim)` column. Vectors are L2-normalised on the way in."""

    def __init__(self, url_or_engine: str | Engine, dim: int = 384, table: str = "episode_vectors",
                 hnsw: bool = False):
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", table):
            raise InvalidInput(f"not a plain table name: {table!r}")
        self.dim, self.table = dim, table
        self.engine = create_engine(url_or_engine, pool_pre_ping=True) if isinstance(url_or_engine, str) \
            else url_or_engine
        with self.engine.begin() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
            conn.execute(text(f"CREATE TABLE IF NOT EXISTS {table} (id text PRIMARY KEY, "
                              f"embedding vector({dim}) NOT NULL)"))
            if hnsw:
                conn.execute(text(f"CREATE INDEX IF NOT EXISTS {table}_hnsw ON {table} "
                                  "USING hnsw (embedding vector_cosine_ops)"))

    def __len__(self) -> int:
        with self.engine.connect() as conn:
            return conn.scalar(text(f"SELECT count(*) FROM {self.table}"))

    def __contains__(self, id: Hashable) -> bool:
        with self.engine.connect() as conn:
            return conn.scalar(text(f"SELECT EXISTS (SELECT 1 FROM {self.table} WHERE id = :id)"),
                               {"id": str(id)})

    def upsert(self, ids: Sequence[Hashable], vectors: np.ndarray) -> None:
        v = self._check(vectors, len(ids))
        if len(set(ids)) != len(ids):
            raise InvalidInput("duplicate ids in one upsert")
        if not len(ids):
            return
        rows = [{"id": str(i), "v": _literal(row)} for i, row in zip(ids, v)]
        with self.engine.begin() as conn:
            conn.execute(text(f"INSERT INTO {self.table} (id, embedding) VALUES (:id, CAST(:v AS vector)) "
                              "ON CONFLICT (id) DO UPDATE SET embedding = EXCLUDED.embedding"), rows)

    def remove(self, ids: Iterable[Hashable]) -> None:
        with self.engine.begin() as conn:
            conn.execute(text(f"DELETE FROM {self.table} WHERE id = ANY(CAST(:ids AS text[]))"),
                         {"ids": [str(i) for i in ids]})

    def retain(self, ids: Iterable[Hashable]) -> None:
        """Remove every row whose id is not in `ids` (episodes deleted since the table was filled)."""
        with self.engine.begin() as conn:
            conn.execute(text(f"DELETE FROM {self.table} WHERE NOT (id = ANY(CAST(:ids AS text[])))"),
                         {"ids": [str(i) for i in ids]})

    def vector(self, id: Hashable) -> np.ndarray:
        with self.engine.connect() as conn:
            got = conn.scalar(text(f"SELECT embedding::text FROM {self.table} WHERE id = :id"), {"id": str(id)})
        if got is None:
            raise NotFound(f"{id!r} is not in the index")
        return np.array(got.strip("[]").split(","), dtype=np.float32)

    def search(self, vector: np.ndarray, k: int = 10,
               exclude: Iterable[Hashable] | None = None) -> list[tuple[Hashable, float]]:
        """The `k` most similar ids, best first, as (id, cosine)."""
        if k <= 0:
            return []
        q = _literal(self._check(np.asarray(vector)[None, :], 1)[0])
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(f"SELECT id, 1 - (embedding <=> CAST(:q AS vector)) AS score FROM {self.table} "
                     "WHERE NOT (id = ANY(CAST(:ex AS text[]))) "
                     "ORDER BY embedding <=> CAST(:q AS vector), id LIMIT :k"),
                {"q": q, "ex": [str(i) for i in (exclude or ())], "k": int(k)},
            ).all()
        # A zero query vector has no direction: pgvector gives NaN, as the dot products would be 0 / 0.
        return [(r.id, float(r.score)) for r in rows if r.score is not None and np.isfinite(r.score)]

    def _check(self, vectors: np.ndarray, n: int) -> np.ndarray:
        v = np.asarray(vectors, dtype=np.float32)
        if v.ndim != 2 or v.shape != (n, self.dim):
            raise InvalidInput(f"expected {n} vectors of {self.dim} dimensions, got shape {v.shape}")
        if not np.isfinite(v).all():
            raise InvalidInput("vectors must be finite")
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        return v / np.where(norms > 0, norms, 1.0)


def _literal(row: np.ndarray) -> str:
    # repr of each float32 widened to float64 is exact, so the server stores the same float4 values.
    return "[" + ",".join(repr(float(x)) for x in row) + "]"
