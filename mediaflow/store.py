"""Persistence: episodes and transcripts in any SQLAlchemy database (SQLite by default).

An episode is keyed by the SHA-256 of its audio bytes, so the same file processed twice is one
episode. Every write is one transaction: a reader sees the old row or the new one.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from sqlalchemy import (
    JSON,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
    update,
    or_,
    and_,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from mediaflow.errors import NotFound, StorageError
from mediaflow.transcript import Transcript

EPISODE_ID_LEN = 16
MAX_ITEM_ATTEMPTS = 3  # a feed item that failed this many polls is left alone
_SCHEMA_LOCK_KEY = 0x6D66_0001  # PostgreSQL advisory lock held while creating or migrating tables


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Episode(Base):
    __tablename__ = "episodes"

    id: Mapped[str] = mapped_column(String(EPISODE_ID_LEN), primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    show: Mapped[str | None] = mapped_column(String(500), nullable=True)  # the show or feed it belongs to
    persons: Mapped[list | None] = mapped_column(JSON, nullable=True)  # the feed's podcast:person tags
    published_at: Mapped[datetime | None] = mapped_column(nullable=True)
    source_name: Mapped[str] = mapped_column(String(500))
    audio_path: Mapped[str] = mapped_column(String(1000))  # relative to the data dir
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending|processing|done|failed
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    size_bytes: Mapped[int] = mapped_column(Integer)
    duration_s: Mapped[float] = mapped_column(Float)
    sample_rate: Mapped[int] = mapped_column(Integer)
    channels: Mapped[int] = mapped_column(Integer)
    codec: Mapped[str] = mapped_column(String(50))
    container: Mapped[str] = mapped_column(String(100))
    loudness_dbfs: Mapped[float | None] = mapped_column(Float, nullable=True)
    peak_dbfs: Mapped[float | None] = mapped_column(Float, nullable=True)
    # A run working on the episode holds a lease and renews it; one whose lease ran out died (see lease.py).
    lease_owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=_now)
    updated_at: Mapped[datetime] = mapped_column(default=_now, onupdate=_now)

    def to_dict(self) -> dict:
        return {c.name: getattr(self, c.name) for c in self.__table__.columns}


class TranscriptRow(Base):
    __tablename__ = "transcripts"

    episode_id: Mapped[str] = mapped_column(ForeignKey("episodes.id", ondelete="CASCADE"), primary_key=True)
    model: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(16))
    duration_s: Mapped[float] = mapped_column(Float)
    word_count: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=_now)


class ChaptersRow(Base):
    __tablename__ = "chapters"

    episode_id: Mapped[str] = mapped_column(ForeignKey("episodes.id", ondelete="CASCADE"), primary_key=True)
    method: Mapped[str] = mapped_column(String(100))
    data: Mapped[list] = mapped_column(JSON)  # [{start, end, title}]
    # When `data` are the creator's chapters, ours are kept here (chapters/creator.py).
    generated: Mapped[list | None] = mapped_column(JSON, nullable=True)
    summary: Mapped[str | None] = mapped_column(Text, nullable=True)  # the episode's, by the language model
    queries: Mapped[list | None] = mapped_column(JSON, nullable=True)  # synthetic search queries (queries.py)
    terms: Mapped[str | None] = mapped_column(Text, nullable=True)  # titles, summaries, queries: for search
    created_at: Mapped[datetime] = mapped_column(default=_now)


class FeaturesRow(Base):
    __tablename__ = "features"

    episode_id: Mapped[str] = mapped_column(ForeignKey("episodes.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[str] = mapped_column(String(100))
    model_id: Mapped[str] = mapped_column(String(200))
    data: Mapped[dict] = mapped_column(JSON)  # EpisodeFeatures.to_dict()
    terms: Mapped[str | None] = mapped_column(Text, nullable=True)  # keywords and entities, for search
    semantic_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    codebook_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=_now)


class SpeakersRow(Base):
    __tablename__ = "speakers"

    episode_id: Mapped[str] = mapped_column(ForeignKey("episodes.id", ondelete="CASCADE"), primary_key=True)
    method: Mapped[str] = mapped_column(String(100))
    data: Mapped[dict] = mapped_column(JSON)  # speakers.Speakers.to_dict(): turns, voiceprints, names
    created_at: Mapped[datetime] = mapped_column(default=_now)


class VoiceprintRow(Base):
    """A show's known voice: the running mean of a named speaker's voiceprints over its episodes."""

    __tablename__ = "voiceprints"
    __table_args__ = (UniqueConstraint("show", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    show: Mapped[str] = mapped_column(String(500), index=True)
    name: Mapped[str] = mapped_column(String(200))
    vector: Mapped[str] = mapped_column(Text)  # base64 float32, unit length
    episodes: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=_now, onupdate=_now)


class FeedRow(Base):
    __tablename__ = "feeds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    url: Mapped[str] = mapped_column(String(2000), unique=True)
    title: Mapped[str | None] = mapped_column(String(500), nullable=True)
    last_polled_at: Mapped[datetime | None] = mapped_column(nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=_now)


class FeedItemRow(Base):
    __tablename__ = "feed_items"
    __table_args__ = (UniqueConstraint("feed_id", "guid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    feed_id: Mapped[int] = mapped_column(ForeignKey("feeds.id", ondelete="CASCADE"), index=True)
    guid: Mapped[str] = mapped_column(String(1000))
    title: Mapped[str] = mapped_column(String(500))
    enclosure_url: Mapped[str] = mapped_column(String(2000))
    published_at: Mapped[datetime | None] = mapped_column(nullable=True)
    chapters_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)  # podcast:chapters
    transcript_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)  # podcast:transcript
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    persons: Mapped[list | None] = mapped_column(JSON, nullable=True)  # podcast:person, as feeds.Person.to_dict()
    status: Mapped[str] = mapped_column(String(20), default="new")  # new|done|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    episode_id: Mapped[str | None] = mapped_column(String(EPISODE_ID_LEN), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=_now)


def _get(s: Session, table, key, what: str | None = None):
    """The row, or NotFound naming what is missing (the episode, or what the episode lacks yet)."""
    row = s.get(table, key)
    if row is not None:
        return row
    if table is FeedRow or table is FeedItemRow:
        raise NotFound(f"{'feed item' if table is FeedItemRow else 'feed'} {key} not found")
    ep = row if table is Episode else s.get(Episode, key)
    if ep is None:
        raise NotFound(f"episode {key!r} not found")
    raise NotFound(f"episode {key!r} has no {what} yet (status: {ep.status})")


class Store:
    """The project's database. Construct with an SQLAlchemy URL; tables are created on first use."""

    def __init__(self, url: str):
        self.url = url
        kwargs: dict = {}
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True  # a server restart leaves dead pooled connections behind
        self.engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Worker processes starting together would race to create the same tables; one at a time.
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK_KEY})
            Base.metadata.create_all(conn)
            _add_missing_columns(conn)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed on success, rolled back on any error."""
        s = self._sessions()
        try:
            yield s
            s.commit()
        except OperationalError as exc:
            s.rollback()
            raise StorageError(f"database unavailable: {exc.orig}") from exc
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    # -- episodes -----------------------------------------------------------------------------
    def get_by_hash(self, content_hash: str) -> Episode | None:
        with self.session() as s:
            return s.scalar(select(Episode).where(Episode.content_hash == content_hash))

    def add_episode(self, **fields) -> Episode:
        """Insert an episode unless one with the same content hash exists; return the stored one."""
        with self.session() as s:
            existing = s.scalar(select(Episode).where(Episode.content_hash == fields["content_hash"]))
            if existing is not None:
                return existing
            ep = Episode(id=fields["content_hash"][:EPISODE_ID_LEN], **fields)
            s.add(ep)
        return ep

    def get_episode(self, episode_id: str) -> Episode:
        with self.session() as s:
            return _get(s, Episode, episode_id)

    def list_episodes(self, limit: int = 50, offset: int = 0, status: str | None = None) -> tuple[list[Episode], int]:
        with self.session() as s:
            q = select(Episode)
            count_q = select(func.count()).select_from(Episode)
            if status:
                q, count_q = q.where(Episode.status == status), count_q.where(Episode.status == status)
            total = s.scalar(count_q) or 0
            rows = list(s.scalars(q.order_by(Episode.created_at.desc(), Episode.id).limit(limit).offset(offset)))
        return rows, total

    def delete_episode(self, episode_id: str) -> None:
        """Delete the episode and (by cascade, and explicitly for databases without it) its rows."""
        with self.session() as s:
            ep = _get(s, Episode, episode_id)
            for table in (TranscriptRow, ChaptersRow, FeaturesRow, SpeakersRow):
                row = s.get(table, episode_id)
                if row is not None:
                    s.delete(row)
            s.flush()  # children first: deleted after the episode, the cascade has taken them already
            s.delete(ep)

    # -- leases (see mediaflow/lease.py); they leave `updated_at` alone: they change no content ---
    def take_lease(self, episode_id: str, owner: str, until: datetime, dead_owner: str | None = None) -> bool:
        """Hold the episode's lease unless another owner holds one that has not run out (or is
        `dead_owner`, known to have died); atomic."""
        with self.session() as s:
            now = _now()
            held = s.execute(
                update(Episode).where(Episode.id == episode_id).where(
                    or_(Episode.lease_owner.is_(None), Episode.lease_owner == owner, Episode.lease_until < now,
                        Episode.lease_owner == (dead_owner or owner)))
                .values(lease_owner=owner, lease_until=until, updated_at=Episode.updated_at).execution_options(synchronize_session=False))
            return held.rowcount == 1

    def lease_owner(self, episode_id: str) -> str | None:
        with self.session() as s:
            return s.scalar(select(Episode.lease_owner).where(Episode.id == episode_id))

    def renew_leases(self, owner: str, until: datetime) -> int:
        """Extend every lease `owner` holds; returns how many."""
        with self.session() as s:
            return s.execute(update(Episode).where(Episode.lease_owner == owner)
                             .values(lease_until=until, updated_at=Episode.updated_at).execution_options(synchronize_session=False)).rowcount

    def release_lease(self, episode_id: str, owner: str) -> None:
        with self.session() as s:
            s.execute(update(Episode).where(Episode.id == episode_id, Episode.lease_owner == owner)
                      .values(lease_owner=None, lease_until=None, updated_at=Episode.updated_at).execution_options(synchronize_session=False))

    def orphans(self, quiet_since: datetime) -> list[Episode]:
        """Episodes left `pending` or `processing` with no live lease, untouched since `quiet_since`."""
        now = _now()
        with self.session() as s:
            return list(s.scalars(select(Episode).where(
                Episode.status.in_(("pending", "processing")),
                or_(Episode.lease_until.is_(None), Episode.lease_until < now),
                Episode.updated_at < quiet_since,
            ).order_by(Episode.created_at)))

    def search_episodes(self, q: str, limit: int = 50, offset: int = 0) -> tuple[list[Episode], int]:
        """Episodes whose title, show, description, keywords, chapters (titles, summaries), summary or synthetic
        queries contain `q` (case-insensitive), or, for a query of several words, contain each of its words;
        best match first (`mediaflow.search.rank`), then newest."""
        from mediaflow.search import rank, words

        def contains(text: str):
            like = "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            return or_(
                func.lower(Episode.title).like(like, escape="\\"), func.lower(Episode.show).like(like, escape="\\"),
                func.lower(Episode.description).like(like, escape="\\"),
                Episode.id.in_(select(FeaturesRow.episode_id).where(FeaturesRow.terms.like(like, escape="\\"))),
                Episode.id.in_(select(ChaptersRow.episode_id).where(ChaptersRow.terms.like(like, escape="\\"))),
            )

        cond = contains(q)
        each = [w for w in dict.fromkeys(words(q)) if len(w) >= 3][:8]  # "e_h" is one term, not "e" and "h"
        if len(each) >= 2:  # "sleep and light" finds an episode that says both, apart
            cond = or_(cond, and_(*(contains(w) for w in each)))
        with self.session() as s:
            found = s.execute(
                select(Episode, FeaturesRow.terms, ChaptersRow.terms, ChaptersRow.queries)
                .outerjoin(FeaturesRow, FeaturesRow.episode_id == Episode.id)
                .outerjoin(ChaptersRow, ChaptersRow.episode_id == Episode.id)
                .where(cond).order_by(Episode.created_at.desc(), Episode.id)).all()
        docs = {ep.id: {"title": ep.title, "show": ep.show, "description": ep.description, "terms": terms,
                        "chapters": _without(chapter_terms, queries), "queries": "\n".join(queries or [])}
                for ep, terms, chapter_terms, queries in found}
        score = dict(rank(q, docs))
        order = sorted(range(len(found)), key=lambda i: -score.get(found[i][0].id, 0.0))  # stable: newest next
        return [found[i][0] for i in order[offset:offset + limit]], len(found)

    def update_episode(self, episode_id: str, **fields) -> Episode:
        with self.session() as s:
            ep = _get(s, Episode, episode_id)
            for k, v in fields.items():
                setattr(ep, k, v)
        return ep

    # -- transcripts --------------------------------------------------------------------------
    def save_transcript(self, episode_id: str, transcript: Transcript, status: str = "done", **episode_fields) -> None:
        """Replace the episode's transcript and set its status, in one transaction."""
        with self.session() as s:
            ep = _get(s, Episode, episode_id)
            row = s.get(TranscriptRow, episode_id)
            if row is None:
                row = TranscriptRow(episode_id=episode_id)
                s.add(row)
            row.model = transcript.model
            row.language = transcript.language
            row.duration_s = transcript.duration
            row.word_count = len(transcript.text.split())
            row.data = json.loads(json.dumps(transcript.to_dict()))
            row.created_at = _now()
            for k, v in episode_fields.items():
                setattr(ep, k, v)
            ep.status, ep.error = status, None

    def get_transcript(self, episode_id: str) -> Transcript:
        with self.session() as s:
            row = _get(s, TranscriptRow, episode_id, "transcript")
        return Transcript.from_dict(row.data)

    def save_chapters(self, episode_id: str, chapters: list[dict], method: str,
                      generated: list[dict] | None = None, summary: str | None = None,
                      queries: list[str] | None = None) -> None:
        """Replace the episode's chapters, with its summary and synthetic search queries, in one transaction
        (`generated`: ours, when `chapters` are the creator's)."""
        with self.session() as s:
            _get(s, Episode, episode_id)
            row = s.get(ChaptersRow, episode_id) or ChaptersRow(episode_id=episode_id)
            row.method, row.data, row.generated, row.created_at = method, chapters, generated, _now()
            row.summary, row.queries = summary, list(queries) if queries else None
            texts = [c.get(k) for c in [*chapters, *(generated or [])] for k in ("title", "summary")]
            row.terms = "\n".join(t for t in [*texts, summary, *(queries or [])] if t).lower() or None
            s.add(row)

    def chapters_row(self, episode_id: str) -> ChaptersRow | None:
        """The chapters with their method, ours beside the creator's, and when they were made; None if none yet."""
        with self.session() as s:
            return s.get(ChaptersRow, episode_id)

    def get_chapters(self, episode_id: str) -> tuple[list[dict], str]:
        """(chapters, method) of an episode; NotFound if there are none yet."""
        with self.session() as s:
            row = _get(s, ChaptersRow, episode_id, "chapters")
        return row.data, row.method

    def chapters_method(self, episode_id: str) -> str | None:
        with self.session() as s:
            row = s.get(ChaptersRow, episode_id)
            return row.method if row else None

    # -- speakers -----------------------------------------------------------------------------
    def save_speakers(self, episode_id: str, data: dict, method: str) -> None:
        """Replace the episode's speakers (turns, voiceprints, names) in one transaction."""
        with self.session() as s:
            _get(s, Episode, episode_id)
            row = s.get(SpeakersRow, episode_id) or SpeakersRow(episode_id=episode_id)
            row.method, row.data, row.created_at = method, data, _now()
            s.add(row)

    def get_speakers(self, episode_id: str) -> tuple[dict, str] | None:
        """(data, method), or None when the episode has not been diarized yet."""
        with self.session() as s:
            row = s.get(SpeakersRow, episode_id)
            return (row.data, row.method) if row else None

    def speakers_method(self, episode_id: str) -> str | None:
        with self.session() as s:
            row = s.get(SpeakersRow, episode_id)
            return row.method if row else None

    def voiceprints(self, show: str) -> dict:
        """The show's enrolled voices: name → unit float32 vector."""
        from mediaflow.features import decode_vector

        with self.session() as s:
            rows = s.scalars(select(VoiceprintRow).where(VoiceprintRow.show == show))
            return {r.name: decode_vector(r.vector) for r in rows}

    def enroll_voiceprint(self, show: str, name: str, vector) -> None:
        """Fold one episode's voiceprint of a named speaker into the show's library."""
        import numpy as np

        from mediaflow.features import decode_vector, encode_vector

        with self.session() as s:
            row = s.scalar(select(VoiceprintRow).where(VoiceprintRow.show == show, VoiceprintRow.name == name))
            if row is None:
                row = VoiceprintRow(show=show, name=name, episodes=0)
                s.add(row)
                old = None
            else:
                old = decode_vector(row.vector)
            v = np.asarray(vector, dtype=np.float32)
            if old is not None and old.shape != v.shape:  # an older encoder's print: start the mean again
                old, row.episodes = None, 0
            v = v if old is None else old * (row.episodes or 0) + v  # the running mean, kept unit-length
            v = v / (np.linalg.norm(v) or 1.0)
            row.vector, row.episodes = encode_vector(v), (row.episodes or 0) + 1

    # -- features -----------------------------------------------------------------------------
    def save_features(self, episode_id: str, data: dict) -> None:
        """Replace the episode's features; its semantic ID stays until the next catalogue refresh."""
        with self.session() as s:
            _get(s, Episode, episode_id)
            row = s.get(FeaturesRow, episode_id) or FeaturesRow(episode_id=episode_id)
            row.version, row.model_id, row.data, row.created_at = data["version"], data["model_id"], data, _now()
            terms = [t["text"] for key in ("keywords", "entities") for t in data.get(key, [])]
            terms += [c["summary"] for c in data.get("chapters", []) if c.get("summary")]  # the model's, searchable
            row.terms = " | ".join(terms).lower()
            s.add(row)

    def get_features(self, episode_id: str) -> FeaturesRow:
        with self.session() as s:
            return _get(s, FeaturesRow, episode_id, "features")

    def features_version(self, episode_id: str) -> tuple[str, str] | None:
        with self.session() as s:
            row = s.get(FeaturesRow, episode_id)
            return (row.version, row.model_id) if row else None

    def all_features(self) -> list[tuple[Episode, FeaturesRow]]:
        """Every episode that has features, with them (the recommendation catalogue)."""
        with self.session() as s:
            q = select(Episode, FeaturesRow).join(FeaturesRow, FeaturesRow.episode_id == Episode.id)
            return [(e, f) for e, f in s.execute(q.order_by(Episode.id))]

    def catalogue_stamp(self) -> tuple:
        """Changes whenever any episode's features or metadata change: a cache key for the catalogue."""
        with self.session() as s:
            features = s.execute(select(func.count(FeaturesRow.episode_id), func.max(FeaturesRow.created_at))).one()
            return (*features, s.scalar(select(func.max(Episode.updated_at))))

    def save_semantic_ids(self, ids: dict[str, str], codebook_version: str) -> None:
        """Set every episode's semantic ID in one transaction; episodes not in `ids` lose theirs."""
        with self.session() as s:
            for row in s.scalars(select(FeaturesRow)):
                row.semantic_id = ids.get(row.episode_id)
                row.codebook_version = codebook_version if row.episode_id in ids else None

    # -- feeds --------------------------------------------------------------------------------
    def add_feed(self, url: str) -> FeedRow:
        """Register a feed URL (or local feed file); the existing row if it is known already."""
        with self.session() as s:
            row = s.scalar(select(FeedRow).where(FeedRow.url == url))
            if row is None:
                row = FeedRow(url=url)
                s.add(row)
                s.flush()
            return row

    def list_feeds(self) -> list[FeedRow]:
        with self.session() as s:
            return list(s.scalars(select(FeedRow).order_by(FeedRow.id)))

    def update_feed(self, feed_id: int, **fields) -> None:
        with self.session() as s:
            row = _get(s, FeedRow, feed_id)
            for k, v in fields.items():
                setattr(row, k, v)

    def record_items(self, feed_id: int, items: list[dict]) -> list[FeedItemRow]:
        """Insert the items not seen before (by guid); return every item of `items` still to process."""
        with self.session() as s:
            known = {r.guid: r for r in s.scalars(select(FeedItemRow).where(FeedItemRow.feed_id == feed_id))}
            for it in items:
                if it["guid"] not in known:
                    row = FeedItemRow(feed_id=feed_id, **it)
                    s.add(row)
                    known[it["guid"]] = row
            s.flush()
            wanted = {it["guid"] for it in items}
            return [r for g, r in known.items()
                    if g in wanted and r.status != "done" and (r.attempts or 0) < MAX_ITEM_ATTEMPTS]

    def get_feed(self, feed_id: int) -> FeedRow:
        with self.session() as s:
            return _get(s, FeedRow, feed_id)

    def get_feed_item(self, item_id: int) -> FeedItemRow:
        with self.session() as s:
            return _get(s, FeedItemRow, item_id)

    def update_item(self, item_id: int, **fields) -> None:
        with self.session() as s:
            row = _get(s, FeedItemRow, item_id)
            for k, v in fields.items():
                setattr(row, k, v)

    def feed_items(self, feed_id: int) -> list[FeedItemRow]:
        with self.session() as s:
            return list(s.scalars(select(FeedItemRow).where(FeedItemRow.feed_id == feed_id).order_by(FeedItemRow.id)))

    def item_of_episode(self, episode_id: str) -> FeedItemRow | None:
        """The feed item an episode came from, if any (the first, when two feeds carry the same audio)."""
        with self.session() as s:
            return s.scalar(select(FeedItemRow).where(FeedItemRow.episode_id == episode_id).order_by(FeedItemRow.id))

    def show_episodes(self, show: str, limit: int = 500) -> list[Episode]:
        """A show's episodes, newest first (by publication, else by arrival)."""
        with self.session() as s:
            q = select(Episode).where(Episode.show == show)
            return list(s.scalars(q.order_by(func.coalesce(Episode.published_at, Episode.created_at).desc(), Episode.id)
                                  .limit(limit)))

    def transcript_model(self, episode_id: str) -> str | None:
        with self.session() as s:
            row = s.get(TranscriptRow, episode_id)
            return row.model if row else None

    def count(self) -> int:
        with self.session() as s:
            return s.scalar(select(func.count()).select_from(Episode)) or 0


def _without(terms: str | None, queries: list | None) -> str | None:
    """The chapters' search text without the queries' lines (ranked as their own field)."""
    drop = {q.lower() for q in queries or []}
    return "\n".join(line for line in (terms or "").splitlines() if line not in drop)


def _add_missing_columns(conn) -> None:
    """Add nullable columns that a newer version introduced to tables an older version created.

    Only additive, nullable changes are made here; anything else needs a real migration.
    """
    existing = inspect(conn)
    for table in Base.metadata.sorted_tables:
        if not existing.has_table(table.name):
            continue
        have = {c["name"] for c in existing.get_columns(table.name)}
        for col in table.columns:
            if col.name not in have and col.nullable:
                kind = col.type.compile(dialect=conn.dialect)
                conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{col.name}" {kind}'))


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL lets the API read while a flow writes; foreign keys make deletes cascade.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
