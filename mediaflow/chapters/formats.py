"""Chapter exports: our JSON, Podcasting 2.0 JSON chapters, WebVTT chapters, YouTube description,
and ID3v2 CHAP/CTOC frames in an MP3 copy."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from mediaflow.errors import InvalidInput
from mediaflow.transcript import cue_text, timestamp

FORMATS = ("json", "podcast", "vtt", "youtube")
MEDIA_TYPES = {
    "json": "application/json",
    "podcast": "application/json+chapters",
    "vtt": "text/vtt",
    "youtube": "text/plain",
}
PODCAST_VERSION = "1.2.0"


def to_podcast(chapters, title: str | None = None) -> dict:
    """Podcasting 2.0 JSON chapters (podcast namespace, version 1.2.0)."""
    doc: dict = {"version": PODCAST_VERSION, "chapters": []}
    if title:
        doc["title"] = title
    for c in chapters:
        doc["chapters"].append({"startTime": round(c.start, 2), "endTime": round(c.end, 2), "title": c.title})
    return doc


def to_vtt(chapters) -> str:
    lines = ["WEBVTT", ""]
    for i, c in enumerate(chapters, 1):
        lines += [f"Chapter {i}", f"{timestamp(c.start)} --> {timestamp(c.end)}", cue_text(c.title), ""]
    return "\n".join(lines)


def to_youtube(chapters) -> str:
    """`00:00 Title` lines as YouTube and Spotify read them: first at 00:00, at least three."""
    if len(chapters) < 3:
        raise InvalidInput(f"YouTube chapters need at least 3 chapters; this episode has {len(chapters)}")
    hours = chapters[-1].start >= 3600

    def stamp(t: float) -> str:
        t = int(t)
        h, rem = divmod(t, 3600)
        m, s = divmod(rem, 60)
        return f"{h}:{m:02d}:{s:02d}" if hours else f"{m:02d}:{s:02d}"

    lines = [f"{stamp(0 if i == 0 else c.start)} {c.title}" for i, c in enumerate(chapters)]
    return "\n".join(lines) + "\n"


def export(chapters, fmt: str, title: str | None = None, summary: str | None = None,
           queries: list[str] | None = None) -> str:
    """`summary` and `queries`: the episode's summary and synthetic search queries, written into the `json`
    format when given."""
    if fmt == "json":
        return json.dumps({"chapters": [c.to_dict() for c in chapters], **({"summary": summary} if summary else {}),
                           **({"queries": list(queries)} if queries else {})}, ensure_ascii=False)
    if fmt == "podcast":
        return json.dumps(to_podcast(chapters, title), ensure_ascii=False)
    if fmt == "vtt":
        return to_vtt(chapters)
    if fmt == "youtube":
        return to_youtube(chapters)
    raise InvalidInput(f"unknown chapter format {fmt!r}; use one of: {', '.join(FORMATS)}")


def parse_youtube(text: str) -> list[tuple[float, str]]:
    out = []
    for line in text.splitlines():
        m = re.match(r"^(?:(\d+):)?(\d{1,2}):(\d{2})\s+(.+)$", line.strip())
        if m:
            h, mm, ss, t = m.groups()
            out.append((int(h or 0) * 3600 + int(mm) * 60 + int(ss), t))
    return out


def write_id3_chapters(
    src_mp3: str | Path, dst: str | Path, chapters, title: str | None = None, duration: float | None = None,
) -> Path:
    """Copy an MP3 and add ID3v2 CHAP frames plus a top-level CTOC, atomically. With `duration` (the audio's
    decoded length, in seconds) no frame starts or ends after it."""
    from mutagen.id3 import CHAP, CTOC, ID3, TIT2, CTOCFlags, ID3NoHeaderError

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    os.close(fd)  # the copy below opens the file by name
    tmp = Path(name)
    try:
        shutil.copyfile(src_mp3, tmp)
        try:
            tags = ID3(tmp)
        except ID3NoHeaderError:
            tags = ID3()
        tags.delall("CHAP")
        tags.delall("CTOC")
        ids = [f"chp{i}" for i in range(len(chapters))]
        last_ms = int(duration * 1000) if duration is not None else None

        def ms(t: float) -> int:
            return round(t * 1000) if last_ms is None else min(round(t * 1000), last_ms)

        for cid, c in zip(ids, chapters):
            tags.add(CHAP(element_id=cid, start_time=ms(c.start), end_time=ms(c.end),
                          sub_frames=[TIT2(encoding=3, text=[c.title])]))
        tags.add(CTOC(element_id="toc", flags=CTOCFlags.TOP_LEVEL | CTOCFlags.ORDERED, child_element_ids=ids,
                      sub_frames=[TIT2(encoding=3, text=[title or "Chapters"])]))
        if title and not tags.getall("TIT2"):
            tags.add(TIT2(encoding=3, text=[title]))
        tags.save(tmp, v2_version=4)
        tmp.replace(dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dst
