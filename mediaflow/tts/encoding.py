"""Speech out: the audio formats the speech endpoints offer, each streamable sentence by sentence.

    spec = check_format("mp3")                      # raises if the name is unknown or this ffmpeg cannot encode it
    ffmpeg_command("mp3", 24_000)                   # s16le on stdin -> MP3 frames on stdout, flushed per packet
    wav_header(24_000) + pcm16(chunk) + ...         # a WAV stream of unknown length
    encode_whole(audio, 24_000, "flac")             # a finished, seekable file

`pcm` and `wav` are written here. A streamed WAV header carries 0xFFFFFFFF for both sizes, the usual
"length unknown" marker, which ffmpeg, browsers and Python's `wave` read to the end of the data.
`mp3`, `ogg-opus`, `aac` (ADTS) and `flac` go through one ffmpeg process per stream that reads 16-bit
PCM on stdin and flushes every packet, so a sentence's audio leaves as soon as it is encoded.

`check_format` is the one check of a format: `ffmpeg_command` and `encode_whole` take a name that
passed it (the API route checks before the response starts; the library's own callers pass constants).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from mediaflow.audio import encode
from mediaflow.errors import DependencyMissing, InvalidInput, UnsupportedFormat

_UNKNOWN = 0xFFFFFFFF
_OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


@dataclass(frozen=True)
class SpeechFormat:
    """One output format: its media type and, for the compressed ones, how ffmpeg writes it."""

    name: str
    media_type: str
    encoder: str | None = None  # ffmpeg encoder; None: written here without ffmpeg
    muxer: str | None = None
    bitrate: str | None = None
    options: tuple[str, ...] = ()  # muxer options for low latency


FORMATS: dict[str, SpeechFormat] = {
    "wav": SpeechFormat("wav", "audio/wav"),
    "pcm": SpeechFormat("pcm", "audio/pcm"),  # media type parameters added by `media_type`
    # no Xing header: on a pipe ffmpeg cannot go back to fill in its frame count, and a wrong one misleads players
    "mp3": SpeechFormat("mp3", "audio/mpeg", "libmp3lame", "mp3", "64k", ("-write_xing", "0")),
    # 200 ms Ogg pages instead of the default 1 s, so audio leaves in small steps
    "ogg-opus": SpeechFormat("ogg-opus", "audio/ogg", "libopus", "ogg", "32k", ("-page_duration", "200000")),
    "aac": SpeechFormat("aac", "audio/aac", "aac", "adts", "64k"),
    "flac": SpeechFormat("flac", "audio/flac", "flac", "flac"),
}


def media_type(fmt: str, sample_rate: int) -> str:
    """The Content-Type for `fmt`. Raw PCM names its rate and layout, since nothing in the bytes does.

    Not `audio/L16`: that type means big-endian (RFC 2586), and we send little-endian like OpenAI's `pcm`.
    """
    if fmt == "pcm":
        return f"audio/pcm;rate={sample_rate};channels=1;format=s16le"
    return FORMATS[fmt].media_type


@lru_cache(maxsize=1)
def ffmpeg_encoders() -> frozenset[str]:
    """The audio encoders this ffmpeg was built with."""
    ffmpeg = shutil.which("ffmpeg")
    if not ffmpeg:
        raise DependencyMissing("`ffmpeg` not found on PATH: install ffmpeg (e.g. `apt-get install ffmpeg`).")
    out = subprocess.run([ffmpeg, "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=30).stdout
    # after a legend (" A..... = Audio"), lines look like " A....D libmp3lame   libmp3lame MP3 (MPEG audio layer 3)"
    rows = (line.split() for line in out.split("------", 1)[-1].splitlines())
    return frozenset(parts[1] for parts in rows if len(parts) > 1 and parts[0].startswith("A"))


def check_format(fmt: str) -> SpeechFormat:
    """The format's spec, or a clear error: unknown name, or an ffmpeg without the encoder it needs."""
    spec = FORMATS.get(fmt)
    if spec is None:
        raise InvalidInput(f"unknown audio format {fmt!r}; use one of: {', '.join(FORMATS)}")
    if spec.encoder and spec.encoder not in ffmpeg_encoders():
        usable = [f for f, s in FORMATS.items() if not s.encoder or s.encoder in ffmpeg_encoders()]
        raise UnsupportedFormat(
            f"this server's ffmpeg cannot encode {fmt} (no `{spec.encoder}` encoder); use one of: {', '.join(usable)}"
        )
    return spec


def pcm16(audio: np.ndarray) -> bytes:
    """float32 samples → 16-bit signed little-endian PCM (clipped, as `mediaflow.audio.encode` does)."""
    return (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def wav_header(sample_rate: int, n_samples: int | None = None) -> bytes:
    """A 44-byte mono 16-bit WAV header; without `n_samples` the sizes say "unknown" (for streaming)."""
    data = _UNKNOWN if n_samples is None else n_samples * 2
    riff = _UNKNOWN if n_samples is None else 36 + data
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16)
    return b"RIFF" + struct.pack("<I", riff) + b"WAVEfmt " + fmt + b"data" + struct.pack("<I", data)


def ffmpeg_command(fmt: str, sample_rate: int) -> list[str]:
    """ffmpeg reading mono s16le at `sample_rate` on stdin, writing `fmt` (checked) to stdout packet by packet."""
    spec = FORMATS[fmt]
    if spec.encoder is None:
        raise InvalidInput(f"{fmt} needs no ffmpeg")
    out = ["-c:a", spec.encoder, *(["-b:a", spec.bitrate] if spec.bitrate else [])]
    if spec.encoder == "libopus" and sample_rate not in _OPUS_RATES:
        out += ["-ar", "24000"]  # Opus codes only these rates; Piper's 22.05 kHz is resampled
    return [
        shutil.which("ffmpeg") or "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
        # no probing: the input is described below, and probing waits for ~64 KB (about a sentence and a half)
        "-probesize", "32", "-analyzeduration", "0",
        "-f", "s16le", "-ar", str(sample_rate), "-ac", "1", "-i", "pipe:0",
        *out, *spec.options, "-flush_packets", "1", "-f", spec.muxer, "pipe:1",
    ]


def encode_whole(audio: np.ndarray, sample_rate: int, fmt: str) -> bytes:
    """A complete file in `fmt` (checked) with exact lengths in its headers (seekable, duration known up front)."""
    spec = FORMATS[fmt]
    if fmt == "pcm":
        return pcm16(audio)
    if fmt == "wav":
        return wav_header(sample_rate, len(audio)) + pcm16(audio)
    if fmt in ("mp3", "flac", "ogg-opus"):
        # through a temporary file, so ffmpeg can go back and write the frame count / STREAMINFO
        return encode(audio, sample_rate, "ogg" if fmt == "ogg-opus" else fmt, bitrate=spec.bitrate)
    # ADTS frames carry no total length, so the streaming command writes a finished AAC file as it is
    proc = subprocess.run(ffmpeg_command(fmt, sample_rate), input=pcm16(audio), capture_output=True, timeout=600)
    if proc.returncode != 0 or not proc.stdout:
        reason = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise UnsupportedFormat(f"ffmpeg could not encode {fmt}: {reason[0]}")
    return proc.stdout
