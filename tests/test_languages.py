"""Many languages in one file: the multilingual Whisper base (`ASR_MODEL=base`) keeps each passage of an
episode that switches language mid-way in its own words. The speech is Debian's espeak-ng (German and
English voices), made by the test."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import wer
from mediaflow.asr import Transcriber

GERMAN = (
    "Guten Morgen und herzlich willkommen zu unserer Sendung. Heute sprechen wir über die Geschichte des "
    "Kaffees in Europa. Im siebzehnten Jahrhundert eröffneten in Venedig, London und Wien die ersten "
    "Kaffeehäuser. Dort trafen sich Kaufleute, Schriftsteller und Studenten, um Zeitungen zu lesen und über "
    "Politik zu streiten. Viele Städte versuchten, das neue Getränk zu verbieten, aber ohne Erfolg. Heute "
    "trinken die Menschen in Deutschland mehr Kaffee als Bier oder Wasser aus der Flasche."
)
ENGLISH = (
    "Now let us switch to English for the second half of the show. Coffee reached the Americas in the "
    "eighteenth century, and plantations spread quickly across Brazil and Colombia. Today more than two "
    "billion cups are poured every day around the world. Our guest explains why roasting changes the taste, "
    "how water temperature matters, and which brewing method she prefers at home on a quiet Sunday morning."
)


def espeak(text: str, voice: str, path) -> None:
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(path), text], check=True)


@pytest.fixture(scope="module")
def two_languages(tmp_path_factory):
    if not shutil.which("espeak-ng"):
        pytest.skip("Debian's espeak-ng is not installed (make test installs it)")
    d = tmp_path_factory.mktemp("languages")
    espeak(GERMAN, "de", d / "de.wav")
    espeak(ENGLISH, "en-us", d / "en.wav")
    out = d / "de-then-en.wav"
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y", "-i", str(d / "de.wav"), "-i", str(d / "en.wav"), "-filter_complex",
         "[0:a]aresample=16000,apad=pad_dur=2[a];[1:a]aresample=16000[b];[a][b]concat=n=2:v=0:a=1",
         "-ac", "1", "-ar", "16000", str(out)], check=True)
    return out


def test_a_file_that_switches_language_keeps_both_passages(two_languages):
    transcript = Transcriber(model="base", threads=2).transcribe(two_languages)
    switch = next(s.start for s in transcript.segments if "english" in s.text.lower())
    german = " ".join(s.text for s in transcript.segments if s.start < switch)
    english = " ".join(s.text for s in transcript.segments if s.start >= switch)
    assert {"Kaffee", "Jahrhundert", "Deutschland"} & set(german.replace(".", " ").replace(",", " ").split()), german
    assert wer(ENGLISH, english) < 0.35, english
    assert transcript.language in {"de", "en"}  # the language most of the speech is in


def test_an_english_only_model_still_reads_the_english_passage(two_languages):
    transcript = Transcriber(model="tiny.en", threads=2).transcribe(two_languages)
    assert transcript.language == "en"
    assert "coffee" in transcript.text.lower()
