"""Chapters: seams found in a transcript stitched from different topics; titles, formats, edge cases."""

from __future__ import annotations

import json

import pytest

from mediaflow.chapters import Chapter, ChapterOptions, chapterize, chapterize_sentences
from mediaflow.chapters.formats import PODCAST_VERSION, export, parse_youtube, to_podcast, write_id3_chapters
from mediaflow.chapters.segment import SegmentOptions
from mediaflow.chapters.sentences import from_transcript
from mediaflow.chapters.titles import MAX_TITLE
from mediaflow.errors import InvalidInput
from mediaflow.transcript import Segment, Transcript

TOPICS = {
    "volcanoes": [
        "Volcanoes form where molten rock rises through cracks in the crust of the Earth.",
        "Magma collects in a chamber several kilometres below the volcano.",
        "When gas pressure in the magma grows too high, the volcano erupts.",
        "Sticky magma rich in silica traps gas and explodes violently.",
        "Runny basalt lava flows out in glowing rivers, as it does in Hawaii.",
        "Volcanic ash can ground aircraft across a whole continent.",
        "The eruption of Tambora in 1815 cooled the climate of the entire planet.",
        "Geologists watch volcanoes with seismometers and satellites.",
        "A swarm of small earthquakes often comes before an eruption.",
        "Volcanic soil is very fertile, so farmers live close to active volcanoes.",
    ],
    "coffee": [
        "Coffee plants come from the highlands of Ethiopia.",
        "Legend says a goat herder noticed his goats dancing after eating coffee berries.",
        "Monks in Yemen roasted and brewed coffee to stay awake during night prayers.",
        "Coffee houses spread from Cairo to Istanbul and then to London.",
        "In London coffee houses merchants traded shares and insurance.",
        "Arabica and robusta are the two main species of coffee beans.",
        "Brazil grows more coffee beans than any other country.",
        "Roasting turns green coffee beans brown and creates their aroma.",
        "A barista pulls an espresso shot with hot water under high pressure.",
        "Caffeine blocks adenosine receptors, which is why coffee keeps you awake.",
    ],
    "football": [
        "The football team won the championship final on penalties.",
        "Their goalkeeper saved two penalty kicks in the shootout.",
        "The striker scored twenty goals in the league this season.",
        "The coach changed the formation to three defenders at half time.",
        "Fans filled the stadium and sang for the whole match.",
        "The referee showed a red card after a dangerous tackle.",
        "The midfielder passed the ball through the defence for the winning goal.",
        "The club signed a young winger from the academy.",
        "Training sessions focus on pressing and quick passing.",
        "The league title was decided on the last day of the season.",
    ],
    "computers": [
        "Charles Babbage designed the Analytical Engine with gears and punched cards.",
        "Ada Lovelace wrote the first computer program for that engine.",
        "ENIAC used eighteen thousand vacuum tubes and filled a large room.",
        "The transistor replaced vacuum tubes and made computers smaller.",
        "Integrated circuits put thousands of transistors on one silicon chip.",
        "Moore's law predicted that transistor counts would double every two years.",
        "The first personal computers were sold as kits to hobbyists.",
        "Programming languages like FORTRAN let scientists write software more easily.",
        "Operating systems manage memory, files and processes for programs.",
        "Today a smartphone processor has billions of transistors.",
    ],
}


def stitched(seconds_per_sentence: float = 6.0, pause: float = 0.4) -> Transcript:
    segs, t = [], 0.0
    for sents in TOPICS.values():
        for s in sents:
            segs.append(Segment(len(segs), t, t + seconds_per_sentence - pause, s))
            t += seconds_per_sentence
    return Transcript(segs, "en", t, "test")


def test_finds_the_seams_between_topics():
    t = stitched()
    chapters = chapterize(t, title="A show about everything")
    seams = [60.0, 120.0, 180.0]
    starts = [c.start for c in chapters]
    assert starts[0] == 0.0
    for seam in seams:
        assert any(abs(s - seam) <= 6.5 for s in starts), (seam, starts)
    assert len(chapters) <= 6
    assert chapters[-1].end == pytest.approx(t.duration)
    assert all(a.end == b.start for a, b in zip(chapters, chapters[1:]))


def test_titles_are_short_unique_and_about_their_chapter():
    chapters = chapterize(stitched())
    titles = [c.title for c in chapters]
    assert all(0 < len(x) <= MAX_TITLE for x in titles)
    assert len({x.lower() for x in titles}) == len(titles)
    words = {k: " ".join(v).lower() for k, v in TOPICS.items()}
    # every title after the introduction names something said in the chapter it heads
    for c in chapters[1:]:
        topic = list(TOPICS)[min(int(round(c.start / 60)), 3)]
        assert any(w.lower() in words[topic] for w in c.title.split() if len(w) > 3), (c.title, topic)


def test_no_ten_second_chapters_even_when_every_sentence_changes_topic():
    segs = []
    for i in range(12):
        topic = list(TOPICS)[i % 4]
        segs.append(Segment(i, i * 5.0, i * 5.0 + 4.5, TOPICS[topic][i // 4]))
    chapters = chapterize(Transcript(segs, "en", 60.0, "t"))
    assert all(c.end - c.start >= 30 for c in chapters[:-1])


def test_given_boundaries_are_kept_and_only_titled():
    t = stitched()
    sents = from_transcript(t)
    cut = next(i for i, s in enumerate(sents) if s.text.startswith("Coffee plants"))
    # out-of-range and duplicate cuts are dropped; 0 is always a start
    chapters = chapterize_sentences(sents, t.duration, cuts=[cut, cut, len(sents) + 5, -1])
    assert [c.start for c in chapters] == [0.0, pytest.approx(sents[cut].start, abs=0.5)]
    assert chapters[-1].end == pytest.approx(t.duration)
    said = " ".join(s.text for s in sents[cut:]).lower()
    assert 0 < len(chapters[1].title) <= MAX_TITLE
    assert any(w.lower() in said for w in chapters[1].title.split() if len(w) > 3), chapters[1].title


def test_empty_and_one_sentence_transcripts():
    assert chapterize(Transcript([], "en", 0.0, "t")) == []
    one = chapterize(Transcript([Segment(0, 0.0, 3.0, "Hello and welcome.")], "en", 3.0, "t"))
    assert len(one) == 1 and one[0].start == 0.0 and one[0].end == 3.0 and one[0].title


def test_word_timestamps_and_pauses_place_the_boundary(tmp_path):
    from mediaflow.transcript import Word

    segs, t, openings = [], 0.0, []
    for sents in TOPICS.values():
        openings.append(t)
        for s in sents:
            words, wt = [], t
            for w in s.split():
                words.append(Word(wt, wt + 0.35, " " + w))
                wt += 0.4
            segs.append(Segment(len(segs), t, wt, s, words))
            t = wt + (2.5 if s is sents[-1] else 0.3)  # a long breath between topics
    chapters = chapterize(Transcript(segs, "en", t, "t"))
    # each chapter after the first starts in the long breath before its topic, half a second before the
    # topic's first word, so a player seeking there hears that sentence whole
    assert [c.start for c in chapters] == [0.0] + [round(o - 0.5, 2) for o in openings[1:]]


def _captions(silence_after: int | None = None, silence: float = 6.0) -> tuple[Transcript, list[Segment]]:
    """The four topics as caption lines without word times, each lasting as long as its text needs at
    14 characters a second; the line `silence_after` lasts `silence` seconds longer (a pause, a cut)."""
    segs, t = [], 0.0
    for i, s in enumerate(x for v in TOPICS.values() for x in v):
        dur = len(s) / 14.0 + (silence if i == silence_after else 0.0)
        segs.append(Segment(i, t, t + dur, s))
        t += dur
    return Transcript(segs, "en", t, "captions"), segs


def test_caption_lines_that_outlast_their_words_give_the_next_sentence_a_pause():
    from mediaflow.chapters.sentences import from_transcript

    sents = from_transcript(_captions(silence_after=14)[0])
    assert sents[15].pause_before == pytest.approx(6.0, abs=0.3)
    assert max(s.pause_before for i, s in enumerate(sents) if i != 15) < 0.3


def test_a_long_silence_between_caption_lines_opens_a_chapter():
    plain, _ = _captions()
    assert [c.start for c in chapterize(plain)] == pytest.approx([0.0] + [s.start for s in plain.segments[10::10]],
                                                                   abs=0.01)
    quiet, segs = _captions(silence_after=14)
    starts = [c.start for c in chapterize(quiet)]
    # the chapter starts in the silence, half a second before the first line after it
    assert any(abs(s - (segs[15].start - 0.5)) < 0.01 for s in starts), (starts, segs[15].start)
    off = ChapterOptions(segment=SegmentOptions(pause_weight=0.0))
    assert not any(abs(s - (segs[15].start - 0.5)) < 0.01 for s in (c.start for c in chapterize(quiet, options=off)))


CHAPTERS = [Chapter(0.0, 65.0, "Introduction"), Chapter(65.0, 3700.5, "Social Learning"),
            Chapter(3700.5, 3800.0, "Bobo & the Doll")]


def test_podcast_json_chapters_validate_against_the_namespace_fields():
    doc = json.loads(export(CHAPTERS, "podcast", title="Ep 12"))
    assert doc["version"] == PODCAST_VERSION == "1.2.0"
    assert set(doc) <= {"version", "chapters", "author", "title", "podcastName", "description", "fileName"}
    allowed = {"startTime", "endTime", "title", "img", "url", "toc", "location"}
    for ch in doc["chapters"]:
        assert set(ch) <= allowed and isinstance(ch["startTime"], (int, float))
    starts = [c["startTime"] for c in doc["chapters"]]
    assert starts == sorted(starts) and starts[0] == 0
    assert to_podcast(CHAPTERS)["chapters"][1]["title"] == "Social Learning"


def test_webvtt_chapters_parse_back_through_ffmpeg(tmp_path):
    import subprocess

    vtt = export(CHAPTERS, "vtt")
    assert vtt.startswith("WEBVTT\n")
    assert "00:01:05.000 --> 01:01:40.500\nSocial Learning" in vtt
    assert "Bobo &amp; the Doll" in vtt  # a bare & is not allowed in cue text
    path = tmp_path / "chapters.vtt"
    path.write_text(vtt)
    # ffmpeg's WebVTT demuxer reads the cues; as SRT they come back with their times and titles
    srt = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "srt", "-"], capture_output=True,
                         text=True, check=True).stdout
    cues = [block.splitlines() for block in srt.strip().split("\n\n")]
    assert [(c[1], c[2]) for c in cues] == [
        ("00:00:00,000 --> 00:01:05,000", "Introduction"),
        ("00:01:05,000 --> 01:01:40,500", "Social Learning"),
        ("01:01:40,500 --> 01:03:20,000", "Bobo & the Doll"),  # the escape read back as the character
    ]


def test_youtube_description_round_trips():
    text = export(CHAPTERS, "youtube")
    assert text.splitlines()[0] == "0:00:00 Introduction"
    assert parse_youtube(text) == [(0, "Introduction"), (65, "Social Learning"), (3700, "Bobo & the Doll")]
    short = [Chapter(0, 30, "A"), Chapter(30, 90, "B"), Chapter(90, 200, "C")]
    assert export(short, "youtube").splitlines() == ["00:00 A", "00:30 B", "01:30 C"]
    with pytest.raises(InvalidInput, match="at least 3"):
        export(CHAPTERS[:2], "youtube")
    with pytest.raises(InvalidInput, match="unknown chapter format"):
        export(CHAPTERS, "pdf")


def test_id3_chap_and_ctoc_frames_read_back_with_mutagen(tmp_path):
    from mutagen.id3 import ID3

    from conftest import tone
    from mediaflow.audio import encode

    src = tmp_path / "ep.mp3"
    src.write_bytes(encode(tone(4.0), 16000, "mp3"))
    chapters = [Chapter(0.0, 1.5, "Intro"), Chapter(1.5, 4.0, "Volcanoes")]
    out = write_id3_chapters(src, tmp_path / "out" / "ep-chapters.mp3", chapters, title="Ep")
    tags = ID3(out)
    chaps = sorted(tags.getall("CHAP"), key=lambda f: f.start_time)
    assert [(c.start_time, c.end_time, str(c.sub_frames["TIT2"])) for c in chaps] == [
        (0, 1500, "Intro"), (1500, 4000, "Volcanoes")]
    toc = tags.getall("CTOC")[0]
    assert list(toc.child_element_ids) == [c.element_id for c in chaps]
    assert src.read_bytes() != out.read_bytes()  # the source is left alone
    assert [p.name for p in out.parent.iterdir()] == ["ep-chapters.mp3"]
