"""Who is speaking: the diarization of an episode attributed to its transcript, its speakers named,
each show's voices remembered, and the turns written as RTTM.

Names come from four places, and are never invented (an unnamed speaker stays "Speaker 2"):
- the transcript: self-introductions ("I'm Ada Lovelace", "my name is …") name the speaker who says
  them; introductions of someone else ("my guest today is …", "please welcome …", "joining me is …",
  "thanks, …") name the next other speaker. A name must be confirmed: by the feed's `podcast:person`
  tags, or by the entity finder (`terms.entities`) in the transcript or the episode's description.
  The tags and the description's full names also complete a partial introduction: "I'm Ada" with a
  tag (or a description naming) "Ada Lovelace", and no other Ada, names "Ada Lovelace";
- a person: `PUT /episodes/{id}/speakers/{label}`, which beats all others;
- the show's voiceprint library: a named speaker's voiceprint is enrolled under the show, and an
  unnamed speaker of a later episode whose voice matches (cosine ≥ `diarize.SAME_SPEAKER`) gets the name;
- the feed, by elimination (`by_elimination`, source `feed`): only when the episode's tags name as many
  speaking people (host, co-host, guest…) as voices were found, every name already placed is one of
  them, and exactly one voice and one tagged person are left. A solo show with one host tag and one
  voice is the common case. Talk time alone never names anyone (the most talkative is often the guest).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mediaflow.config import Settings
from mediaflow.errors import InvalidInput, NotFound
from mediaflow.transcript import Segment, Transcript, Word

SOURCES = ("person", "introduction", "voiceprint", "feed")  # strongest first
# podcast:person roles (the Podcast Taxonomy's "cast" group) whose holder is heard in the episode
SPEAKING_ROLES = frozenset({"host", "co-host", "guest", "guest host", "cohost", "narrator", "announcer"})


def display(label: str) -> str:
    """`S2` → `Speaker 2`: how an unnamed speaker is shown."""
    m = re.fullmatch(r"S(\d+)", label)
    return f"Speaker {m.group(1)}" if m else label


@dataclass
class Named:
    name: str
    source: str  # one of SOURCES
    role: str | None = None  # the feed's podcast:person role for this name, when it has one


@dataclass
class Speakers:
    """What is stored per episode: the diarization, and the names found for its labels."""

    diarization: object  # mediaflow.diarize.Diarization
    names: dict[str, Named] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return list(dict.fromkeys(t.speaker for t in self.diarization.turns))

    def name_of(self, label: str | None) -> str | None:
        if label is None:
            return None
        return self.names[label].name if label in self.names else display(label)

    def to_dict(self) -> dict:
        return {"diarization": self.diarization.to_dict(),
                "names": {k: {"name": v.name, "source": v.source, **({"role": v.role} if v.role else {})}
                          for k, v in self.names.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> Speakers:
        from mediaflow.diarize import Diarization

        return cls(Diarization.from_dict(d["diarization"]), {k: Named(**v) for k, v in d.get("names", {}).items()})


# -- attribution -----------------------------------------------------------------------------------
NEAR_S = 1.5  # a word outside every turn takes the nearest turn's speaker up to this far


def attribute(transcript: Transcript, speakers: Speakers, names: bool = True) -> Transcript:
    """Each word gets the speaker whose turn covers it most (outside every turn: the word before it in
    its segment, else the nearest turn within `NEAR_S`); a segment is split where the speaker
    changes. `names=False` keeps the labels (S1, S2…) instead of display names."""
    diar = speakers.diarization
    show = speakers.name_of if names else (lambda label: label)
    out: list[Segment] = []
    for seg in transcript.segments:
        if not seg.words:
            label = diar.speaker_at(seg.start, seg.end) or diar.nearest_speaker(seg.start, seg.end, NEAR_S)
            out.append(Segment(len(out), seg.start, seg.end, seg.text, [], show(label)))
            continue
        run: list[Word] = []
        run_label = None
        for w in seg.words:
            label = diar.speaker_at(w.start, w.end) or run_label or diar.nearest_speaker(w.start, w.end, NEAR_S)
            if run and label != run_label:
                out.append(_piece(len(out), run, show(run_label)))
                run = []
            run_label = label
            run.append(Word(w.start, w.end, w.text, w.probability, show(label)))
        out.append(_piece(len(out), run, show(run_label)))
    return Transcript(out, transcript.language, transcript.duration, transcript.model,
                      transcript.language_probability)


def _piece(i: int, words: list[Word], speaker: str | None) -> Segment:
    return Segment(i, words[0].start, words[-1].end, "".join(w.text for w in words).strip(), words, speaker)


def summary(transcript: Transcript, speakers: Speakers) -> list[dict]:
    """Each speaker with label, name (when known) and where it came from, talk time, turns, first words."""
    labelled = attribute(transcript, speakers, names=False)
    rows = []
    for label in speakers.labels:
        turns = [t for t in speakers.diarization.turns if t.speaker == label]
        said = " ".join(s.text for s in labelled.segments if s.speaker == label).split()
        named = speakers.names.get(label)
        rows.append({"label": label, "name": named.name if named else None,
                     "name_source": named.source if named else None, "role": named.role if named else None,
                     "display_name": speakers.name_of(label),
                     "talk_time_s": round(sum(t.end - t.start for t in turns), 2), "turns": len(turns),
                     "first_words": " ".join(said[:12])})
    return rows


def to_rttm(speakers: Speakers, file_id: str) -> str:
    """NIST RTTM: `SPEAKER <file> 1 <start> <duration> <NA> <NA> <label> <NA> <NA>`, a line per turn
    (the label is the speaker's name with spaces as underscores, or its S-label)."""
    file_id = re.sub(r"\s+", "_", file_id) or "episode"
    lines = []
    for t in speakers.diarization.turns:
        who = re.sub(r"\s+", "_", speakers.names[t.speaker].name) if t.speaker in speakers.names else t.speaker
        lines.append(f"SPEAKER {file_id} 1 {t.start:.3f} {t.end - t.start:.3f} <NA> <NA> {who} <NA> <NA>")
    return "\n".join(lines) + ("\n" if lines else "")


# -- names from the transcript ---------------------------------------------------------------------
_NAME = r"((?:[A-Z][\w'’\-]+)(?:\s+(?:[A-Z][\w'’\-]+|de|van|von|da|del|la|du)){0,3})"
_SELF = re.compile(r"\b(?:I'm|I am|my name is|I'm your host,?|this is your host,?)\s+" + _NAME)
_NEXT = re.compile(r"\b(?:my guest(?: today| this week)? is|our guest(?: today)? is|joining me(?: today| now)? is|"
                   r"please welcome|welcome(?: to the show| back)?,?)\s+" + _NAME)
_THANKED = re.compile(r"\b(?:thanks|thank you),?\s+" + _NAME)


def plain_text(description: str | None) -> str:
    """A feed description as text: tags dropped, entities unescaped, spaces collapsed."""
    import html

    if not description:
        return ""
    return " ".join(html.unescape(re.sub(r"<[^>]*>", " ", description)).split())


def known_names(transcript: Transcript, description: str | None) -> set[str]:
    """Names the entity finder sees in the transcript or the description (lower-cased)."""
    from mediaflow.terms import entities

    text = plain_text(description)
    sentences = [s.text for s in transcript.segments] + ([text] if text else [])
    return {e.text.lower() for e in entities(sentences, top_n=200)}


def candidates(persons: list[dict] | None, description: str | None) -> dict[str, str | None]:
    """Full names an introduction may be completed to: the feed's `podcast:person` tags (name → role)
    and the names of two or three words the entity finder sees in the description (role None)."""
    from mediaflow.terms import entities

    out: dict[str, str | None] = {}
    for p in persons or []:
        name = " ".join(str(p.get("name") or "").split())
        if name and name.lower() not in {k.lower() for k in out}:
            out[name] = (p.get("role") or "host").lower()
    text = plain_text(description)
    for e in entities([text], top_n=50) if text else []:
        if 2 <= len(e.text.split()) <= 3 and e.text.lower() not in {k.lower() for k in out}:
            out[e.text] = None
    return out


def _clean(candidate: str, known: set[str], people: dict[str, str | None] | None = None) -> str | None:
    """The name an introduction's capitalised words stand for: the longest leading part that is a
    candidate's full name, or the start or end of exactly one candidate's name ("Ada" for "Ada
    Lovelace"), or a name the entity finder knows."""
    people = people or {}
    words = candidate.split()
    for n in range(len(words), 0, -1):
        name = re.sub(r"['’]s$", "", " ".join(words[:n]))
        low = name.lower().split()
        full = [p for p in people if p.lower().split() == low]
        part = [p for p in people if len(p.split()) > n and low in (p.lower().split()[:n], p.lower().split()[-n:])]
        if full:
            return full[0]
        if len(part) == 1:
            return part[0]
        if name.lower() in known:
            return name
    return None


def from_introductions(labelled: Transcript, known: set[str],
                       people: dict[str, str | None] | None = None) -> dict[str, Named]:
    """Names from introductions in a transcript whose segments carry S-labels; `people` are the
    candidates (name → feed role), which confirm and complete what is said."""
    people = people or {}
    segs = labelled.segments
    found: dict[str, Named] = {}
    taken: set[str] = set()

    def give(label: str | None, name: str | None) -> None:
        if label and name and label not in found and name.lower() not in taken:
            found[label] = Named(name, "introduction", people.get(name))
            taken.add(name.lower())

    for i, seg in enumerate(segs):
        for m in _SELF.finditer(seg.text):
            give(seg.speaker, _clean(m.group(1), known, people))
        for pattern, direction in ((_NEXT, 1), (_THANKED, 0)):
            for m in pattern.finditer(seg.text):
                give(_other(segs, i, direction), _clean(m.group(1), known, people))
    return found


def by_elimination(labels: list[str], names: dict[str, Named], persons: list[dict] | None) -> dict[str, Named]:
    """The one name the feed leaves for the one unnamed voice, or nothing.

    Only when the tags' speaking people (`SPEAKING_ROLES`) are exactly as many as the voices found,
    every name already given is one of theirs, and one voice and one of them are left."""
    speaking: dict[str, str] = {}
    for p in persons or []:
        name, role = " ".join(str(p.get("name") or "").split()), (p.get("role") or "host").lower()
        if name and role in SPEAKING_ROLES:
            speaking.setdefault(name.lower(), name)
    placed = {n.name.lower() for n in names.values()}
    if len(speaking) != len(labels) or not placed <= set(speaking):
        return {}
    voices = [label for label in labels if label not in names]
    left = [name for low, name in speaking.items() if low not in placed]
    if len(voices) == 1 and len(left) == 1:
        return {voices[0]: Named(left[0], "feed", _role_of(left[0], persons))}
    return {}


def _role_of(name: str, persons: list[dict] | None) -> str | None:
    return next(((p.get("role") or "host").lower() for p in persons or []
                 if " ".join(str(p.get("name") or "").split()).lower() == name.lower()), None)


def _other(segs: list[Segment], i: int, direction: int) -> str | None:
    """The next speaker other than segment i's (direction 1), or the nearest other one either side (0)."""
    me = segs[i].speaker
    after = next((s.speaker for s in segs[i + 1:] if s.speaker and s.speaker != me), None)
    if direction == 1:
        return after
    before = next((s.speaker for s in reversed(segs[:i]) if s.speaker and s.speaker != me), None)
    return before or after


# -- per episode, with the store --------------------------------------------------------------------
def identify(episode_id: str, settings: Settings) -> Speakers:
    """Diarize the stored audio, name the speakers, enroll the named ones under the show; stored."""
    from mediaflow import diarize, vad
    from mediaflow.files import speech_path
    from mediaflow.resources import get_store

    store = get_store(settings.db_url)
    ep = store.get_episode(episode_id)
    # the transcription step's speech probabilities, when it kept them for this audio (else the VAD runs again)
    speech = vad.load(speech_path(ep, settings), ep.duration_s) if ep.duration_s else None
    diar = diarize.diarize(settings.data_path / ep.audio_path, max_duration_s=settings.max_duration_h * 3600,
                           speech=speech)
    speakers = Speakers(diar)
    transcript = store.get_transcript(episode_id)
    people = candidates(ep.persons, ep.description)
    known = known_names(transcript, ep.description) | {p.lower() for p in people}
    speakers.names.update(from_introductions(attribute(transcript, speakers, names=False), known, people))
    previous = store.get_speakers(episode_id)
    if previous is not None:  # names a person gave keep their voice when the turns are redone
        old = Speakers.from_dict(previous[0])
        for label, named in old.names.items():
            if named.source == "person":
                new = _same_voice(old.diarization, label, diar)
                if new:
                    speakers.names[new] = named
    if ep.show:
        library = store.voiceprints(ep.show)
        claimed = {n.name for n in speakers.names.values()}
        for label in speakers.labels:
            if label not in speakers.names and label in diar.voiceprints:
                name = diarize.match(diar.voiceprints[label], {k: v for k, v in library.items() if k not in claimed})
                if name:
                    speakers.names[label] = Named(name, "voiceprint", _role_of(name, ep.persons))
                    claimed.add(name)
    speakers.names.update(by_elimination(speakers.labels, speakers.names, ep.persons))
    store.save_speakers(episode_id, speakers.to_dict(), diar.method)
    _enroll(store, ep.show, speakers)
    return speakers


def _same_voice(old, label: str, new) -> str | None:
    """The label in `new` (a Diarization) of the voice `old` called `label`: by voiceprint when both
    come from one encoder, else (the method's encoder changed) by which new speaker's turns cover
    that label's old turns most, when they cover at least half of them."""
    import numpy as np

    from mediaflow import diarize

    print_ = old.voiceprints.get(label)
    if print_ is not None and any(np.shape(v) == np.shape(print_) for v in new.voiceprints.values()):
        return diarize.match(print_, new.voiceprints)
    spans = [t for t in old.turns if t.speaker == label]
    cover: dict[str, float] = {}
    for t in spans:
        for u in new.turns:
            o = min(t.end, u.end) - max(t.start, u.start)
            if o > 0:
                cover[u.speaker] = cover.get(u.speaker, 0.0) + o
    if not cover:
        return None
    best = max(cover, key=cover.__getitem__)
    return best if cover[best] >= 0.5 * sum(t.end - t.start for t in spans) else None


def _enroll(store, show: str | None, speakers: Speakers) -> None:
    if not show:
        return
    for label, named in speakers.names.items():
        if named.source != "voiceprint" and label in speakers.diarization.voiceprints:
            store.enroll_voiceprint(show, named.name, speakers.diarization.voiceprints[label])


def load(episode_id: str, settings: Settings) -> Speakers | None:
    from mediaflow.resources import get_store

    row = get_store(settings.db_url).get_speakers(episode_id)
    return Speakers.from_dict(row[0]) if row else None


def transcript_with_speakers(episode_id: str, settings: Settings) -> Transcript:
    """The stored transcript, each segment and word with its speaker's name once the episode is diarized."""
    from mediaflow.resources import get_store

    transcript = get_store(settings.db_url).get_transcript(episode_id)
    speakers = load(episode_id, settings)
    return attribute(transcript, speakers) if speakers else transcript


def rename(episode_id: str, label: str, name: str, settings: Settings) -> Speakers:
    """A person names a speaker: stored, and the voice enrolled in the show's library."""
    from mediaflow.resources import get_store

    name = " ".join(name.split())
    if not name or len(name) > 100:
        raise InvalidInput("a speaker's name is 1 to 100 characters")
    store = get_store(settings.db_url)
    speakers = load(episode_id, settings)
    if speakers is None:
        raise NotFound(f"episode {episode_id!r} has no speakers yet")
    if label not in speakers.labels:
        raise NotFound(f"episode {episode_id!r} has no speaker {label[:20]!r}; its speakers are "
                       f"{', '.join(speakers.labels) or 'none'}")
    for other, named in list(speakers.names.items()):  # one name, one voice in an episode
        if other != label and named.name.lower() == name.lower():
            del speakers.names[other]
    speakers.names[label] = Named(name, "person", _role_of(name, store.get_episode(episode_id).persons))
    store.save_speakers(episode_id, speakers.to_dict(), speakers.diarization.method)
    _enroll(store, store.get_episode(episode_id).show, speakers)
    return speakers
