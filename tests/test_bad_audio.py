"""Every kind of bad (or merely odd) audio, through the whole flow and through the upload endpoint.

Each input ends in a clear error or a correct result: a failed flow run says why, bad audio leaves no
row and no file behind, odd-but-valid audio is transcribed, and the service stays healthy.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import SPEECH_TEXT, ffmpeg, wait_done, wer
from flows.episodes import process_episode
from mediaflow import audio, config, errors
from mediaflow.resources import get_store
from mediaflow.store import TranscriptRow

SILENCE_S = 3600  # an hour of silence: VAD finds no speech, so it is cheap to "transcribe"


def _flac_claiming(src: Path, dst: Path, samples: int) -> Path:
    """A copy of a FLAC file whose STREAMINFO claims `samples` samples, whatever it really holds."""
    data = bytearray(src.read_bytes())
    at = 8 + 13  # "fLaC", the block header, then 13 bytes into STREAMINFO: 4 bits + 32 bits of total samples
    data[at] = (data[at] & 0xF0) | ((samples >> 32) & 0x0F)
    data[at + 1:at + 5] = struct.pack(">I", samples & 0xFFFFFFFF)
    dst.write_bytes(bytes(data))
    return dst


def _wav_claiming_4gb(dst: Path, seconds: float = 1.0, sr: int = 8000) -> Path:
    """A WAV whose RIFF and data sizes claim ~4 GiB (74 h at 8 kHz 16-bit) in front of one real second."""
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, sr, sr * 2, 2, 16)
    body = (b"\x10\x00\xf0\xff" * int(seconds * sr / 2))
    dst.write_bytes(b"RIFF" + struct.pack("<I", 0xFFFFFFF0) + b"WAVE" + b"fmt " + fmt + b"data"
                    + struct.pack("<I", 0xFFFFFFE0) + body)
    return dst


@pytest.fixture(scope="session")
def bad_media(media_dir, speech_wav) -> dict[str, Path]:
    """The matrix's inputs, made here with ffmpeg and a few bytes of Python."""
    d = media_dir / "bad"
    d.mkdir()
    m: dict[str, Path] = {}
    m["empty"] = d / "empty.mp3"
    m["empty"].write_bytes(b"")
    m["random"] = d / "random.mp3"
    m["random"].write_bytes(os.urandom(48_000))
    m["text"] = d / "notes.txt"
    m["text"].write_text("Show notes: links, timestamps and thanks to our sponsors. " * 100)
    ffmpeg("-i", str(speech_wav), "-b:a", "64k", str(d / "whole.mp3"))
    m["truncated_mp3"] = d / "truncated.mp3"
    m["truncated_mp3"].write_bytes((d / "whole.mp3").read_bytes()[: (d / "whole.mp3").stat().st_size // 3])
    ffmpeg("-i", str(speech_wav), str(d / "whole.flac"))
    m["truncated_flac"] = d / "truncated.flac"
    m["truncated_flac"].write_bytes((d / "whole.flac").read_bytes()[: (d / "whole.flac").stat().st_size // 3])
    m["video_only"] = d / "video.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=blue:s=64x64:d=2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           str(m["video_only"]))
    m["tenth_second"] = d / "tenth.wav"
    ffmpeg("-f", "lavfi", "-i", "sine=f=440:d=0.1", str(m["tenth_second"]))
    m["hour_of_silence"] = d / "silence.mp3"  # 8 kb/s: 3.6 MB for the hour, made in a few seconds
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=8000:cl=mono", "-t", str(SILENCE_S), "-b:a", "8k",
           str(m["hour_of_silence"]))
    m["music_only"] = d / "chords.mp3"  # C major, F major, G major: no words to find
    ffmpeg("-f", "lavfi", "-i",
           "aevalsrc='0.2*(sin(2*PI*261.6*t)+sin(2*PI*329.6*t)+sin(2*PI*392*t))*lt(t,4)"
           "+0.2*(sin(2*PI*349.2*t)+sin(2*PI*440*t)+sin(2*PI*523.3*t))*gte(t,4)*lt(t,8)"
           "+0.2*(sin(2*PI*392*t)+sin(2*PI*493.9*t)+sin(2*PI*587.3*t))*gte(t,8)':s=44100:d=12",
           "-b:a", "128k", str(m["music_only"]))
    m["speech_8k_mono"] = d / "phone.wav"
    ffmpeg("-i", str(speech_wav), "-ar", "8000", "-ac", "1", str(m["speech_8k_mono"]))
    m["speech_96k_24bit"] = d / "studio.wav"
    ffmpeg("-i", str(speech_wav), "-ar", "96000", "-c:a", "pcm_s24le", str(m["speech_96k_24bit"]))
    m["speech_6ch"] = d / "surround.wav"  # the voice in the centre channel, a quiet bed in the others
    ffmpeg("-i", str(speech_wav), "-af",
           "pan=5.1|FL=0.1*c0|FR=0.1*c0|FC=c0|LFE=0*c0|BL=0.05*c0|BR=0.05*c0", str(m["speech_6ch"]))
    m["over_size_limit"] = d / "big.wav"  # 2.5 MiB against a 1 MiB limit (set by the test)
    ffmpeg("-f", "lavfi", "-i", "sine=f=300:d=82", "-ar", "16000", str(m["over_size_limit"]))
    m["wav_header_claims_4gb"] = _wav_claiming_4gb(d / "claims-4gb.wav")
    ffmpeg("-f", "lavfi", "-i", "sine=f=440:d=8", "-ar", "16000", str(d / "tone.flac"))
    m["flac_header_claims_10h"] = _flac_claiming(d / "tone.flac", d / "claims-10h.flac", 16000 * 36_000)
    ffmpeg("-f", "lavfi", "-i", "sine=f=440:d=60", "-ar", "16000", str(d / "minute.flac"))
    # the other way round: the header says 10 s, the frames decode to 60 s (caught while decoding)
    m["flac_header_hides_length"] = _flac_claiming(d / "minute.flac", d / "claims-10s.flac", 16000 * 10)
    return m


@dataclass
class Expect:
    error: type[errors.MediaflowError] | None = None  # None: processed, status done
    status: int = 202  # what POST /episodes answers
    code: str | None = None
    words: tuple[int, int] | None = None  # transcript word count range, when processed
    wer_max: float | None = None  # against SPEECH_TEXT
    max_upload_mb: int | None = None
    max_duration_s: float | None = None
    row_failed: bool = False  # the lie is only found while decoding: the row exists, marked failed


MATRIX = {
    "empty": Expect(errors.EmptyAudio, 422, "empty_audio"),
    "random": Expect(errors.UnsupportedFormat, 415, "unsupported_format"),
    "text": Expect(errors.UnsupportedFormat, 415, "unsupported_format"),
    "truncated_mp3": Expect(words=(3, 30)),  # the first third is transcribed
    "truncated_flac": Expect(words=(3, 30)),
    "video_only": Expect(errors.UnsupportedFormat, 415, "unsupported_format"),
    "tenth_second": Expect(words=(0, 0)),
    "hour_of_silence": Expect(words=(0, 0)),
    "music_only": Expect(words=(0, 3)),
    "speech_8k_mono": Expect(wer_max=0.25),
    "speech_96k_24bit": Expect(wer_max=0.1),
    "speech_6ch": Expect(wer_max=0.1),
    "over_size_limit": Expect(errors.InputTooLarge, 413, "input_too_large", max_upload_mb=1),
    "wav_header_claims_4gb": Expect(words=(0, 0)),  # ffmpeg trusts the file's real size: one second
    "flac_header_claims_10h": Expect(errors.InputTooLarge, 413, "input_too_large"),
    "flac_header_hides_length": Expect(errors.InputTooLarge, max_duration_s=30, row_failed=True),
}

MESSAGES = {  # what a user reads, in part
    errors.EmptyAudio: "empty", errors.UnsupportedFormat: "not a recognised audio|no audio track",
    errors.InputTooLarge: "limit",
}


def _limits(monkeypatch, expect: Expect) -> config.Settings:
    if expect.max_upload_mb:
        monkeypatch.setenv("MEDIAFLOW_MAX_UPLOAD_MB", str(expect.max_upload_mb))
    if expect.max_duration_s:
        monkeypatch.setenv("MEDIAFLOW_MAX_DURATION_H", str(expect.max_duration_s / 3600))
    config.get_settings.cache_clear()
    return config.get_settings()


def leftovers(settings) -> list[str]:
    """Temp and partial files anywhere the pipeline writes: none may survive a run, good or bad."""
    root = settings.data_path
    found = [p for d in ("incoming", "downloads", "trash") if (root / d).is_dir() for p in (root / d).iterdir()]
    found += [p for d in ("audio", "derived", "narration") if (root / d).is_dir()
              for p in (root / d).iterdir() if p.name.startswith(".") or p.suffix in (".tmp", ".part")]
    return sorted(str(p.relative_to(root)) for p in found)


def audio_files(settings) -> list[str]:
    d = settings.data_path / "audio"
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def check_processed(settings, episode_id: str, expect: Expect, source: Path) -> None:
    store = get_store(settings.db_url)
    ep = store.get_episode(episode_id)
    assert ep.status == "done", ep.error
    transcript = store.get_transcript(episode_id)
    n = len(transcript.text.split())
    if expect.words:
        assert expect.words[0] <= n <= expect.words[1], transcript.text
    if expect.wer_max is not None:
        assert wer(SPEECH_TEXT, transcript.text) <= expect.wer_max, transcript.text
    if source.name.startswith("truncated"):  # the transcript covers what is there, not what the header says,
        whole = audio.probe(source.with_name(source.name.replace("truncated", "whole")))
        assert 0 < transcript.duration < whole.duration_s * 0.6
        assert ep.duration_s == transcript.duration  # and so does the episode's duration (issue 14, item 6)
    with store.session() as s:
        assert s.query(TranscriptRow).count() == 1
    assert len(audio_files(settings)) == 1


@pytest.mark.parametrize("name", list(MATRIX))
def test_bad_audio_through_the_flow(name, bad_media, settings, monkeypatch):
    expect = MATRIX[name]
    settings = _limits(monkeypatch, expect)
    source = bad_media[name]
    from faster_whisper import BatchedInferencePipeline

    forward, batches = BatchedInferencePipeline.forward, []
    monkeypatch.setattr(BatchedInferencePipeline, "forward",
                        lambda self, *a, **k: batches.append(1) or forward(self, *a, **k))
    state = process_episode(str(source), return_state=True)
    store = get_store(settings.db_url)
    if expect.error is None:
        assert state.is_completed(), state.message
        check_processed(settings, state.result(), expect, source)
        if name == "hour_of_silence":  # VAD skips the silence: Whisper's decoder never runs on it
            assert batches == []
    else:
        assert state.is_failed()
        with pytest.raises(expect.error) as info:
            state.result()
        assert str(settings.data_path) not in str(info.value)
        assert source.name in str(info.value) or expect.row_failed  # decoding names the stored copy
        assert type(info.value).__name__ in state.message  # the flow run says why it failed
        if expect.row_failed:
            eps, total = store.list_episodes()
            assert total == 1 and eps[0].status == "failed" and "limit" in eps[0].error
            assert len(audio_files(settings)) == 1  # the episode's own audio, kept with its row
        else:
            assert store.count() == 0, "bad audio must create no row"
            assert audio_files(settings) == []
    assert leftovers(settings) == []


@pytest.mark.parametrize("name", list(MATRIX))
def test_bad_audio_through_the_upload_endpoint(name, bad_media, api, settings, monkeypatch):
    import re

    expect = MATRIX[name]
    settings = _limits(monkeypatch, expect)
    source = bad_media[name]
    with open(source, "rb") as f:
        r = api.post("/episodes", files={"file": (source.name, f, "application/octet-stream")})
    body = r.json()
    if expect.error is not None and expect.status != 202:
        assert r.status_code == expect.status, r.text
        assert set(body) == {"error"} and body["error"]["code"] == expect.code
        assert re.search(MESSAGES[expect.error], body["error"]["message"])
        if expect.code != "input_too_large":  # the size checks speak of the upload, not its name
            assert body["error"]["message"].startswith(source.name)  # the user's name, not a temp file's
        assert api.get("/episodes").json()["total"] == 0, "bad audio must create no row"
        assert audio_files(settings) == []
    else:
        assert r.status_code == 202, r.text
        assert body["source_name"] == source.name
        done = wait_done(api, body["id"], timeout=300)
        if expect.row_failed:
            assert done["status"] == "failed" and "limit" in done["error"]
        else:
            check_processed(settings, body["id"], expect, source)
        assert api.get("/episodes").json()["total"] == 1
    assert leftovers(settings) == []
    health = api.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
