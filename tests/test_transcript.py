"""Transcript exports parse as what they claim to be."""

from __future__ import annotations

import json
import re

import pytest

from mediaflow.errors import InvalidInput
from mediaflow.transcript import Segment, Transcript, Word, export, to_podcast


@pytest.fixture
def transcript() -> Transcript:
    return Transcript(
        segments=[
            Segment(0, 0.0, 2.5, "Welcome to the show.", [Word(0.0, 0.6, " Welcome"), Word(0.6, 2.5, " show.")]),
            Segment(1, 3.0, 3725.25, "A very long second part, with commas.", []),
        ],
        language="en",
        duration=3726.0,
        model="whisper-test",
    )


def test_json_round_trips(transcript):
    back = Transcript.from_dict(json.loads(export(transcript, "json")))
    assert back == transcript


def test_webvtt_has_header_and_hour_timestamps(transcript):
    vtt = export(transcript, "vtt")
    assert vtt.startswith("WEBVTT\n\n")
    cues = re.findall(r"(\d\d:\d\d:\d\d\.\d{3}) --> (\d\d:\d\d:\d\d\.\d{3})\n(.+)", vtt)
    assert cues == [
        ("00:00:00.000", "00:00:02.500", "Welcome to the show."),
        ("00:00:03.000", "01:02:05.250", "A very long second part, with commas."),
    ]


def test_srt_numbers_cues_and_uses_commas(transcript):
    blocks = export(transcript, "srt").strip().split("\n\n")
    assert [b.splitlines()[0] for b in blocks] == ["1", "2"]
    assert blocks[1].splitlines()[1] == "00:00:03,000 --> 01:02:05,250"


def test_podcast_namespace_json(transcript):
    doc = json.loads(export(transcript, "podcast"))
    assert doc["version"] == "1.0.0"
    assert doc["segments"][0] == {"startTime": 0.0, "endTime": 2.5, "body": "Welcome to the show."}
    back = Transcript.from_podcast_json(doc)
    assert [s.text for s in back.segments] == [s.text for s in transcript.segments]


def test_text_and_unknown_format(transcript):
    assert export(transcript, "text") == "Welcome to the show. A very long second part, with commas.\n"
    with pytest.raises(InvalidInput, match="unknown transcript format"):
        export(transcript, "docx")


def test_bad_podcast_json_is_invalid_input():
    with pytest.raises(InvalidInput, match="Podcasting 2.0"):
        Transcript.from_podcast_json({"segments": [{"start": 1}]})


def test_empty_transcript_exports(transcript):
    empty = Transcript(segments=[], language="en", duration=0.0, model="m")
    assert export(empty, "vtt") == "WEBVTT\n"
    assert to_podcast(empty)["segments"] == []
