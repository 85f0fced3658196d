"""Audio in: every container ffmpeg reads decodes to 16 kHz mono; bad input gets one clear error."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from conftest import ffmpeg, tone
from mediaflow import audio
from mediaflow.errors import AudioDecodeError, EmptyAudio, InputTooLarge, InvalidInput, UnsupportedFormat

FORMATS = {
    "mp3": ["-c:a", "libmp3lame", "-b:a", "64k"],
    "m4a": ["-c:a", "aac", "-b:a", "64k"],
    "ogg": ["-c:a", "libopus", "-b:a", "32k"],
    "flac": ["-c:a", "flac"],
    "wav": ["-c:a", "pcm_s16le"],
    "webm": ["-c:a", "libopus"],
}


@pytest.fixture(scope="module")
def encoded(media_dir, speech_wav) -> dict[str, Path]:
    out = {}
    for ext, args in FORMATS.items():
        p = media_dir / f"fmt.{ext}"
        ffmpeg("-i", str(speech_wav), *args, str(p))
        out[ext] = p
    # a video container: a colour video track plus the speech
    dur = f"{audio.probe(speech_wav).duration_s:.2f}"
    mp4 = media_dir / "fmt.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=blue:s=64x64:r=5", "-i", str(speech_wav), "-t", dur,
           "-c:v", "libx264", "-c:a", "aac", str(mp4))
    out["mp4"] = mp4
    mkv = media_dir / "fmt.mkv"
    ffmpeg("-f", "lavfi", "-i", "color=c=red:s=64x64:r=5", "-i", str(speech_wav), "-t", dur,
           "-c:v", "libx264", "-c:a", "libvorbis", str(mkv))
    out["mkv"] = mkv
    return out


@pytest.mark.parametrize("ext", [*FORMATS, "mp4", "mkv"])
def test_every_format_decodes_to_16k_mono_with_its_metadata(encoded, speech_wav, ext):
    ref = audio.probe(speech_wav).duration_s
    info = audio.probe(encoded[ext])
    assert info.duration_s == pytest.approx(ref, abs=0.2)
    assert info.channels == 1 and info.sample_rate > 0 and info.codec
    pcm = audio.decode(encoded[ext])
    assert pcm.dtype == np.float32
    assert len(pcm) / audio.SAMPLE_RATE == pytest.approx(ref, abs=0.2)
    assert 0.05 < np.abs(pcm).max() <= 1.0


def test_stream_pcm_yields_fixed_windows_that_add_up_to_the_whole(speech_wav):
    whole = audio.decode(speech_wav)
    windows = list(audio.stream_pcm(speech_wav, window_s=3.0))
    assert all(len(w) == 3 * audio.SAMPLE_RATE for w in windows[:-1])
    assert 0 < len(windows[-1]) <= 3 * audio.SAMPLE_RATE
    np.testing.assert_array_equal(np.concatenate(windows), whole)


def test_stereo_44k_mp3_is_downmixed(speech_mp3):
    info = audio.probe(speech_mp3)
    assert (info.channels, info.sample_rate, info.codec) == (2, 44100, "mp3")
    assert len(audio.decode(speech_mp3)) == pytest.approx(info.duration_s * 16000, rel=0.01)


def test_title_tag_is_read(tmp_path):
    p = tmp_path / "tagged.mp3"
    p.write_bytes(audio.encode(tone(1.0), 16000, "mp3", tags={"title": "Volcanoes, Coffee & Sleep"}))
    assert audio.probe(p).title == "Volcanoes, Coffee & Sleep"


def test_zero_byte_file_is_empty_audio(tmp_path):
    p = tmp_path / "empty.mp3"
    p.write_bytes(b"")
    with pytest.raises(EmptyAudio, match="empty"):
        audio.probe(p)


def test_random_bytes_named_mp3_are_refused(tmp_path):
    p = tmp_path / "noise.mp3"
    p.write_bytes(os.urandom(50_000))
    with pytest.raises(AudioDecodeError):
        audio.probe(p)
        audio.decode(p)


def test_text_file_is_not_audio(tmp_path):
    p = tmp_path / "notes.wav"
    p.write_text("these are my show notes, not audio\n" * 50)
    with pytest.raises(UnsupportedFormat, match="not a recognised"):
        audio.probe(p)


def test_video_without_audio_track_is_refused(tmp_path):
    p = tmp_path / "silent-film.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=green:s=64x64:r=5:d=2", "-c:v", "libx264", str(p))
    with pytest.raises(UnsupportedFormat, match="no audio track"):
        audio.probe(p)


def test_missing_file_is_invalid_input(tmp_path):
    with pytest.raises(InvalidInput, match="no such file"):
        audio.probe(tmp_path / "nope.mp3")


def test_size_and_duration_limits(speech_wav):
    with pytest.raises(InputTooLarge, match="MiB"):
        audio.probe(speech_wav, max_bytes=1000)
    with pytest.raises(InputTooLarge, match="limit"):
        audio.probe(speech_wav, max_duration_s=2.0)
    with pytest.raises(InputTooLarge):
        list(audio.stream_pcm(speech_wav, window_s=1.0, max_duration_s=2.0))


def test_truncated_mp3_decodes_what_is_there(tmp_path, speech_mp3):
    data = speech_mp3.read_bytes()
    p = tmp_path / "cut.mp3"
    p.write_bytes(data[: len(data) // 2])
    pcm = audio.decode(p)
    full = audio.decode(speech_mp3)
    assert 0.3 * len(full) < len(pcm) < 0.7 * len(full)


def test_a_header_without_the_length_is_measured_by_decoding(tmp_path):
    """A FLAC streamed through a pipe (as the speech routes send it) declares 0 samples: ffprobe finds no
    duration, so probe decodes the file to measure it, and stops at the duration limit."""
    import json
    import subprocess

    from mediaflow.tts import encoding

    pcm = encoding.pcm16(tone(3.0, sr=24_000))
    p = tmp_path / "streamed.flac"
    p.write_bytes(subprocess.run(encoding.ffmpeg_command("flac", 24_000), input=pcm, capture_output=True,
                                 check=True).stdout)
    probed = json.loads(subprocess.run(["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json",
                                        str(p)], capture_output=True, text=True, check=True).stdout)
    assert "duration" not in probed["format"] and "duration" not in probed["streams"][0]
    info = audio.probe(p)
    assert info.duration_s == pytest.approx(3.0, abs=1e-3) and info.sample_rate == 24_000
    with pytest.raises(InputTooLarge, match="streamed.flac: decodes to more than"):
        audio.probe(p, max_duration_s=2.0)


def test_loudness_of_a_sine_and_of_silence(tmp_path):
    m = audio.LoudnessMeter()
    m.add(tone(3.0, amp=0.5))
    assert m.loudness_dbfs == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.1)
    assert m.peak_dbfs == pytest.approx(20 * np.log10(0.5), abs=0.1)
    silent = audio.LoudnessMeter()
    silent.add(np.zeros(32000, dtype=np.float32))
    assert silent.loudness_dbfs is None and silent.peak_dbfs is None


@pytest.mark.parametrize("fmt", ["wav", "mp3", "flac", "ogg", "pcm"])
def test_encode_round_trips_through_ffmpeg(tmp_path, fmt):
    data = audio.encode(tone(2.0), 16000, fmt)
    if fmt == "pcm":
        assert len(data) == 2 * 32000
        return
    p = tmp_path / f"t.{fmt}"
    p.write_bytes(data)
    assert audio.probe(p).duration_s == pytest.approx(2.0, abs=0.1)


def test_encode_rejects_unknown_format():
    with pytest.raises(InvalidInput, match="unknown audio format"):
        audio.encode(tone(0.5), 16000, "aiff-c")


def test_atomic_write_leaves_no_temp_files(tmp_path):
    target = tmp_path / "out" / "a.bin"
    audio.atomic_write_bytes(target, b"one")
    audio.atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["a.bin"]


def test_missing_ffprobe_is_a_clear_error(tmp_path, monkeypatch, speech_wav):
    from mediaflow.errors import DependencyMissing

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DependencyMissing, match="ffmpeg"):
        audio.probe(speech_wav)
