"""Our own outputs read back by our own tools (issue 14, items 5-7): speech whose header omits its length,
an MP3 whose header overstates it, and chapters that stay inside the audio they describe.

Every file is made here (ffmpeg, the Piper voice through the speech routes); ffprobe and ffmpeg check it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import SPEECH_TEXT, ffmpeg, wait_done, wer
from mediaflow import pipeline
from mediaflow.chapters import METHOD, Chapter, chapterize
from mediaflow.chapters.formats import write_id3_chapters
from mediaflow.files import chapters_mp3
from mediaflow.resources import get_store
from mediaflow.transcript import Segment, Transcript


def mediaflow(*args: str) -> subprocess.CompletedProcess:
    """The `mediaflow` command as a user runs it."""
    return subprocess.run([str(Path(sys.executable).with_name("mediaflow")), *args], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ))


def ffprobe(path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def decoded(path, channels: int = 1) -> tuple[np.ndarray, int]:
    """Every sample ffmpeg decodes from the file, at its own rate: (samples × channels, rate)."""
    rate = int(ffprobe(path)["streams"][0]["sample_rate"])
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", str(channels),
                          "-f", "s16le", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, "<i2").reshape(-1, channels), rate


def decoded_seconds(path) -> float:
    samples, rate = decoded(path)
    return len(samples) / rate


def audio_md5(path) -> str:
    """ffmpeg's MD5 of the audio packets as stored (no decoding): equal means not re-encoded."""
    return subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a", "-c", "copy", "-f", "md5", "-"],
                          capture_output=True, text=True, check=True).stdout.strip()


# -- 5. speech from our routes, streamed: the FLAC header declares no length --------------------------
SPEECH = {
    "tts": ("/tts", {"text": SPEECH_TEXT, "voice": "piper-joe", "format": "flac"}),
    "openai": ("/v1/audio/speech", {"model": "tts-1", "input": SPEECH_TEXT, "voice": "piper-joe",
                                    "response_format": "flac"}),
}


@pytest.mark.parametrize("route", list(SPEECH))
def test_streamed_speech_flac_is_transcribed_by_the_cli_and_accepted_by_post_episodes(route, api, settings, tmp_path):
    path, body = SPEECH[route]
    r = api.post(path, json=body, timeout=300)
    assert r.status_code == 200, r.text
    assert "chunked" in r.headers.get("transfer-encoding", "")  # streamed: the default
    flac = tmp_path / "client.flac"
    flac.write_bytes(r.content)
    info = ffprobe(flac)
    assert "duration" not in info["format"] and "duration" not in info["streams"][0]  # no length to read
    seconds = decoded_seconds(flac)
    assert seconds > 5

    cli = mediaflow("transcribe", str(flac), "--format", "json", "--no-speakers")  # what is said, not who
    assert cli.returncode == 0, cli.stderr
    doc = json.loads(cli.stdout)
    assert doc["duration"] == pytest.approx(seconds, abs=0.02)
    assert wer(SPEECH_TEXT, " ".join(s["text"] for s in doc["segments"])) <= 0.2

    with open(flac, "rb") as f:
        up = api.post("/episodes", files={"file": ("client.flac", f, "audio/flac")})
    assert up.status_code == 202, up.text
    assert up.json()["duration_s"] == pytest.approx(seconds, abs=0.02)  # measured at ingest, by decoding
    done = wait_done(api, up.json()["id"], timeout=300)
    assert done["status"] == "done", done.get("error")
    assert done["duration_s"] == pytest.approx(seconds, abs=0.02)


@pytest.mark.parametrize("fmt", ["flac", "wav", "mp3"])
def test_speech_that_is_not_streamed_carries_its_length_in_the_header(fmt, api, settings, tmp_path):
    r = api.post("/tts", json={"text": "Try the next episode.", "voice": "piper-joe", "format": fmt, "stream": False})
    assert r.status_code == 200, r.text
    assert "chunked" not in r.headers.get("transfer-encoding", "")
    out = tmp_path / f"whole.{fmt}"
    out.write_bytes(r.content)
    # within one MP3 frame and the encoder delay (~0.08 s at 22 kHz), which ffprobe counts and decoders drop
    assert float(ffprobe(out)["format"]["duration"]) == pytest.approx(decoded_seconds(out), abs=0.1)


# -- 6. an MP3 cut short: its header still says the whole length --------------------------------------
def test_a_truncated_mp3_is_stored_with_the_duration_it_decodes_to(settings, tmp_path):
    whole = tmp_path / "whole.mp3"
    ffmpeg("-f", "lavfi", "-i", "sine=f=440:d=25", "-b:a", "40k", str(whole))  # Xing header: 25 s
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(whole.read_bytes()[:20_000])
    real = decoded_seconds(cut)
    assert 3 < real < 5 and float(ffprobe(cut)["format"]["duration"]) > 20  # the header overstates it

    ep = pipeline.ingest(cut, settings)
    pipeline.process(ep.id, settings)
    stored = get_store(settings.db_url).get_episode(ep.id)
    assert stored.status == "done", stored.error
    assert stored.duration_s == pytest.approx(real, abs=0.02)
    assert get_store(settings.db_url).get_transcript(ep.id).duration == pytest.approx(real, abs=0.02)


# -- 7. chapters inside the audio, and chapters.mp3 that keeps the audio --------------------------------
def test_chapters_end_where_the_audio_ends_even_when_the_last_word_runs_past_it():
    # Whisper's last word can end after the audio does (104.78 s in a 104.724 s file)
    late = Transcript([Segment(0, 0.0, 104.78, "Hello and welcome to the show about volcanoes.")], "en", 104.724, "t")
    chapters = chapterize(late)
    assert chapters[-1].end == pytest.approx(104.72, abs=0.005) and chapters[-1].end <= 104.724
    assert all(c.start < c.end <= 104.724 for c in chapters)


def test_id3_chapter_frames_end_within_the_audio(tmp_path):
    from mutagen.id3 import ID3

    src = tmp_path / "ep.mp3"
    ffmpeg("-f", "lavfi", "-i", "sine=f=440:d=4", "-b:a", "64k", str(src))
    out = write_id3_chapters(src, tmp_path / "ep-chapters.mp3",
                             [Chapter(0.0, 1.5, "Intro"), Chapter(1.5, 4.06, "Volcanoes")], title="Ep", duration=4.0)
    ends = sorted(f.end_time for f in ID3(out).getall("CHAP"))
    assert ends == [1500, 4000]


def test_tagging_an_mp3_leaves_no_file_descriptor_open(tmp_path):
    src = tmp_path / "ep.mp3"
    ffmpeg("-f", "lavfi", "-i", "sine=f=440:d=1", str(src))
    before = len(os.listdir("/proc/self/fd"))
    for i in range(5):
        write_id3_chapters(src, tmp_path / f"ep-{i}.mp3", [Chapter(0.0, 1.0, "All")])
    assert len(os.listdir("/proc/self/fd")) == before


def _stored_with_chapters(source, settings) -> str:
    """The episode processed (a tone: no words, no chapters of its own), then given two chapters, the last
    ending past the audio."""
    ep = pipeline.ingest(source, settings)
    pipeline.process(ep.id, settings)
    chapters = [Chapter(0.0, 2.0, "One"), Chapter(2.0, ep.duration_s + 0.05, "Two")]
    get_store(settings.db_url).save_chapters(ep.id, [c.to_dict() for c in chapters], METHOD)
    return ep.id


def test_chapters_mp3_of_a_stereo_24_bit_flac_keeps_both_channels(settings, tmp_path):
    from mutagen.id3 import ID3

    src = tmp_path / "studio.flac"  # a different tone in each ear
    ffmpeg("-f", "lavfi", "-i", "aevalsrc=0.3*sin(2*PI*440*t)|0.3*sin(2*PI*660*t):s=48000:d=5",
           "-c:a", "flac", "-sample_fmt", "s32", str(src))
    assert ffprobe(src)["streams"][0]["bits_per_raw_sample"] == "24"
    eid = _stored_with_chapters(src, settings)
    out = chapters_mp3(eid, settings)
    stream = ffprobe(out)["streams"][0]
    assert stream["codec_name"] == "mp3" and stream["channels"] == 2
    assert int(stream["bit_rate"]) >= 128_000
    samples, rate = decoded(out, channels=2)
    assert len(samples) / rate == pytest.approx(5.0, abs=0.06)
    left, right = samples[rate:2 * rate, 0].astype(float), samples[rate:2 * rate, 1].astype(float)
    assert abs(np.corrcoef(left, right)[0, 1]) < 0.5  # two different tones, not one mono mix
    assert max(f.end_time for f in ID3(out).getall("CHAP")) <= 5000


def test_chapters_mp3_of_an_mp3_adds_the_tags_without_re_encoding(settings, tmp_path):
    from mutagen.id3 import ID3

    src = tmp_path / "episode.mp3"
    ffmpeg("-f", "lavfi", "-i", "aevalsrc=0.3*sin(2*PI*440*t)|0.3*sin(2*PI*660*t):s=44100:d=5",
           "-b:a", "128k", str(src))
    eid = _stored_with_chapters(src, settings)
    out = chapters_mp3(eid, settings)
    assert audio_md5(out) == audio_md5(src)  # the very same MP3 frames
    assert [str(f.sub_frames["TIT2"]) for f in sorted(ID3(out).getall("CHAP"), key=lambda f: f.start_time)] == [
        "One", "Two"]
    assert max(f.end_time for f in ID3(out).getall("CHAP")) <= 5000
    made = sorted(p.name for p in (settings.data_path / "derived").iterdir() if p.suffix == ".mp3")
    assert made == [out.name]  # no transcode (beside it only JSON soundbites and the kept speech probabilities)
