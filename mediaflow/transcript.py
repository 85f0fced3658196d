"""The transcript as dataclasses, and its exports: JSON, WebVTT, SRT, Podcasting 2.0 JSON, text.

Segments and words carry the `speaker` who said them once the episode is diarized (None before):
WebVTT marks them with `<v Name>` voice tags, SRT with a `Name: ` prefix, the Podcasting 2.0 JSON
with its `speaker` field. RTTM (speaker turns) lives with the speakers, in `mediaflow/speakers.py`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from mediaflow.errors import InvalidInput

FORMATS = ("json", "vtt", "srt", "podcast", "text")
MEDIA_TYPES = {
    "json": "application/json",
    "vtt": "text/vtt",
    "srt": "application/x-subrip",
    "podcast": "application/json",  # Podcasting 2.0 transcript JSON
    "text": "text/plain",
}


@dataclass
class Word:
    start: float
    end: float
    text: str
    probability: float = 1.0
    speaker: str | None = None


@dataclass
class Segment:
    id: int
    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)
    speaker: str | None = None


@dataclass
class Transcript:
    """A timestamped transcript of one episode."""

    segments: list[Segment]
    language: str
    duration: float
    model: str
    language_probability: float = 1.0

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Transcript":
        segments = [
            Segment(
                id=int(s.get("id", i)),
                start=float(s["start"]),
                end=float(s["end"]),
                text=str(s["text"]),
                words=[Word(**w) for w in s.get("words", [])],
                speaker=s.get("speaker"),
            )
            for i, s in enumerate(d.get("segments", []))
        ]
        return cls(
            segments=segments,
            language=d.get("language", "en"),
            duration=float(d.get("duration", segments[-1].end if segments else 0.0)),
            model=d.get("model", "unknown"),
            language_probability=float(d.get("language_probability", 1.0)),
        )

    @classmethod
    def from_podcast_json(cls, d: dict, model: str = "podcast-transcript") -> "Transcript":
        """Read a Podcasting 2.0 JSON transcript (`{"segments": [{"startTime", "endTime", "body"}]}`)."""
        try:
            segments = [
                Segment(id=i, start=float(s["startTime"]), end=float(s["endTime"]), text=str(s["body"]),
                        speaker=str(s["speaker"]) if s.get("speaker") else None)
                for i, s in enumerate(d["segments"])
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not a Podcasting 2.0 JSON transcript: {exc}") from exc
        duration = max((s.end for s in segments), default=0.0)
        return cls(segments=segments, language="en", duration=duration, model=model)


def cue_text(text: str) -> str:
    """Text safe inside a WebVTT cue: `&`, `<` and `>` escaped as the format requires, and no blank
    line or `-->` that would end the cue early."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return " ".join(text.split()) or "…"


def timestamp(seconds: float, sep: str = ".") -> str:
    """`HH:MM:SS.mmm` (WebVTT) or, with `sep=","`, `HH:MM:SS,mmm` (SRT)."""
    ms = max(0, int(round(seconds * 1000)))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def voice_tag(name: str) -> str:
    """A WebVTT `<v …>` annotation: no `>` (it ends the tag), `&`/`<` escaped, one line."""
    return " ".join(name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "").split()) or "Speaker"


def to_vtt(t: Transcript) -> str:
    lines = ["WEBVTT", ""]
    for s in t.segments:
        text = cue_text(s.text)
        if s.speaker:
            text = f"<v {voice_tag(s.speaker)}>{text}"
        lines += [f"{timestamp(s.start)} --> {timestamp(s.end)}", text, ""]
    return "\n".join(lines)


def to_srt(t: Transcript) -> str:
    lines = []
    for i, s in enumerate(t.segments, 1):
        text = f"{s.speaker}: {s.text.strip()}" if s.speaker else s.text.strip()
        lines += [str(i), f"{timestamp(s.start, ',')} --> {timestamp(s.end, ',')}", text, ""]
    return "\n".join(lines)


def to_podcast(t: Transcript) -> dict:
    """Podcasting 2.0 JSON transcript (podcast namespace, `application/json`)."""
    return {
        "version": "1.0.0",
        "segments": [
            {**({"speaker": s.speaker} if s.speaker else {}),
             "startTime": round(s.start, 3), "endTime": round(s.end, 3), "body": s.text.strip()}
            for s in t.segments
        ],
    }


def export(t: Transcript, fmt: str) -> str:
    """Render a transcript in one of `FORMATS`."""
    if fmt == "json":
        return json.dumps(t.to_dict(), ensure_ascii=False)
    if fmt == "vtt":
        return to_vtt(t)
    if fmt == "srt":
        return to_srt(t)
    if fmt == "podcast":
        return json.dumps(to_podcast(t), ensure_ascii=False)
    if fmt == "text":
        return t.text + "\n"
    raise InvalidInput(f"unknown transcript format {fmt!r}; use one of: {', '.join(FORMATS)}")
