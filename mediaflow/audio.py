"""Audio in: probe any file ffmpeg reads, stream it as 16 kHz mono float32, measure it.

Probing goes through pydub (which asks ffprobe); a length the header omits (a FLAC streamed through a
pipe declares 0 samples) is measured by decoding, bounded by the duration limit. Decoding streams
straight from one ffmpeg process in fixed windows, because pydub's `from_file` holds the whole
decoded file in memory and re-decodes from the start for every offset: a two-hour episode would be
held twice.
"""

from __future__ import annotations

import errno
import hashlib
import io
import math
import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from mediaflow.errors import (
    AudioDecodeError,
    DependencyMissing,
    EmptyAudio,
    InputTooLarge,
    InvalidInput,
    StorageError,
    UnsupportedFormat,
)

SAMPLE_RATE = 16_000
_MIN_DURATION_S = 0.05


@dataclass
class AudioInfo:
    """What the source file is, as ffprobe sees it."""

    path: str
    size_bytes: int
    duration_s: float
    sample_rate: int
    channels: int
    codec: str
    container: str
    bit_rate: int | None = None
    title: str | None = None  # from the file's tags (ID3, Vorbis comment, ...)
    description: str | None = None
    album: str | None = None  # podcasts put the show's name here

    def to_dict(self) -> dict:
        return asdict(self)


def _require(tool: str) -> str:
    found = shutil.which(tool)
    if not found:
        raise DependencyMissing(f"`{tool}` not found on PATH: install ffmpeg (e.g. `apt-get install ffmpeg`).")
    return found


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Content hash of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def probe(path: str | Path, max_bytes: int | None = None, max_duration_s: float | None = None) -> AudioInfo:
    """Check that `path` is audio within limits and describe it; raise a clear error otherwise."""
    from pydub.utils import mediainfo_json

    _require("ffprobe")
    p = Path(path)
    if not p.is_file():
        raise InvalidInput(f"{p.name}: no such file")
    size = p.stat().st_size
    if size == 0:
        raise EmptyAudio(f"{p.name}: the file is empty (0 bytes)")
    if max_bytes is not None and size > max_bytes:
        raise InputTooLarge(f"{p.name}: {size / 2**20:.0f} MiB is over the {max_bytes / 2**20:.0f} MiB limit")
    try:
        info = mediainfo_json(str(p))
    except Exception as exc:  # ffprobe crashed or printed no JSON
        raise UnsupportedFormat(f"{p.name}: not a recognised audio or video file") from exc
    streams = [s for s in info.get("streams", []) if s.get("codec_type") == "audio"]
    fmt = info.get("format") or {}
    if not fmt:
        raise UnsupportedFormat(f"{p.name}: not a recognised audio or video file")
    if not streams:
        raise UnsupportedFormat(f"{p.name}: the file has no audio track")
    stream = streams[0]
    duration = _first_float(stream.get("duration"), fmt.get("duration"))
    if duration is None or not math.isfinite(duration):
        # the header omits the length (a FLAC streamed through a pipe declares 0 samples): decode to measure
        duration = measure_duration(p, int(stream.get("sample_rate") or 0) or SAMPLE_RATE, max_duration_s)
    if duration < _MIN_DURATION_S:
        raise EmptyAudio(f"{p.name}: the audio is empty ({duration:.2f} s)")
    if max_duration_s is not None and duration > max_duration_s:
        raise InputTooLarge(
            f"{p.name}: {duration / 3600:.1f} h of audio is over the {max_duration_s / 3600:.1f} h limit"
        )
    return AudioInfo(
        path=str(p),
        size_bytes=size,
        duration_s=duration,
        sample_rate=int(stream.get("sample_rate") or 0),
        channels=int(stream.get("channels") or 0),
        codec=str(stream.get("codec_name") or "unknown"),
        container=str(fmt.get("format_name") or "unknown"),
        bit_rate=int(fmt["bit_rate"]) if str(fmt.get("bit_rate", "")).isdigit() else None,
        title=_tag(fmt, "title") or _tag(stream, "title"),
        description=_tag(fmt, "description") or _tag(fmt, "comment"),
        album=_tag(fmt, "album"),
    )


def _tag(section: dict, key: str) -> str | None:
    tags = {k.lower(): v for k, v in (section.get("tags") or {}).items()}
    value = str(tags.get(key, "")).strip()
    return value[:5000] or None


def _first_float(*values) -> float | None:
    for v in values:
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if f > 0:
            return f
    return None


def stream_pcm(
    path: str | Path,
    window_s: float = 600.0,
    sample_rate: int = SAMPLE_RATE,
    max_duration_s: float | None = None,
) -> Iterator[np.ndarray]:
    """Yield the audio as consecutive float32 mono windows of `window_s` seconds (the last shorter).

    One ffmpeg process decodes the file once; memory holds one window, whatever the length.
    """
    ffmpeg = _require("ffmpeg")
    name = Path(path).name
    cmd = [
        ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path),
        "-map", "0:a:0", "-vn", "-ac", "1", "-ar", str(sample_rate), "-f", "f32le", "-",
    ]
    window_bytes = int(window_s * sample_rate) * 4
    limit = int(max_duration_s * sample_rate) if max_duration_s else None
    total = 0
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        try:
            while True:
                buf = _read_exact(proc.stdout, window_bytes)
                if not buf:
                    break
                samples = np.frombuffer(buf[: len(buf) - len(buf) % 4], dtype=np.float32)
                total += len(samples)
                if limit is not None and total > limit:
                    raise InputTooLarge(f"{name}: decodes to more than the {max_duration_s / 3600:.1f} h limit")
                yield samples
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stdout.close()
            proc.wait()
        err.seek(0)
        stderr = err.read().decode(errors="replace").strip()
    if total == 0:
        reason = stderr.splitlines()[-1] if stderr else "no audio samples"
        raise AudioDecodeError(f"{name}: could not decode the audio ({_clean(reason)})")


def measure_duration(path: str | Path, sample_rate: int = SAMPLE_RATE, max_duration_s: float | None = None) -> float:
    """Seconds of audio the file decodes to, for when its header does not say (or cannot be trusted).

    Streamed at the file's own rate, one minute at a time; past `max_duration_s` it stops with `InputTooLarge`.
    """
    samples = sum(len(w) for w in stream_pcm(path, 60.0, sample_rate=sample_rate, max_duration_s=max_duration_s))
    return samples / sample_rate


def _read_exact(stream, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        b = stream.read(n - got)
        if not b:
            break
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def _clean(msg: str) -> str:
    # ffmpeg prefixes messages with the input path; a user-facing error should not leak it.
    return msg.split(": ", 1)[-1] if os.sep in msg else msg


def decode(path: str | Path, sample_rate: int = SAMPLE_RATE, max_duration_s: float | None = None) -> np.ndarray:
    """Decode a whole file to float32 mono (for clips; long episodes should use `stream_pcm`)."""
    parts = list(stream_pcm(path, window_s=600.0, sample_rate=sample_rate, max_duration_s=max_duration_s))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


class LoudnessMeter:
    """Gated loudness in dBFS over 400 ms blocks (BS.1770 gating, without K-weighting) and peak.

    Fed window by window so it never needs the whole episode in memory.
    """

    def __init__(self, sample_rate: int = SAMPLE_RATE):
        self.block = int(0.4 * sample_rate)
        self._carry = np.zeros(0, dtype=np.float32)
        self._energies: list[np.ndarray] = []
        self.peak = 0.0

    def add(self, samples: np.ndarray) -> None:
        x = np.concatenate([self._carry, samples]) if len(self._carry) else samples
        n = len(x) // self.block * self.block
        if n:
            self._energies.append(np.mean(np.square(x[:n].reshape(-1, self.block), dtype=np.float64), axis=1))
            self.peak = max(self.peak, float(np.max(np.abs(x[:n]))))
        self._carry = x[n:].copy()

    @property
    def loudness_dbfs(self) -> float | None:
        if not self._energies:
            return None
        e = np.concatenate(self._energies)
        e = e[e > 10 ** (-70 / 10)]  # absolute gate
        if not len(e):
            return None
        e = e[e > np.mean(e) * 10 ** (-10 / 10)]  # relative gate
        return round(float(10 * np.log10(np.mean(e))), 2)

    @property
    def peak_dbfs(self) -> float | None:
        return round(20 * math.log10(self.peak), 2) if self.peak > 0 else None


def encode(
    audio: np.ndarray, sample_rate: int, fmt: str = "wav", bitrate: str | None = None, tags: dict | None = None
) -> bytes:
    """Encode float32 mono audio to wav, mp3, flac, ogg (opus) or raw 16-bit pcm bytes."""
    from pydub import AudioSegment

    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    if fmt == "pcm":
        return pcm
    seg = AudioSegment(data=pcm, sample_width=2, frame_rate=sample_rate, channels=1)
    codecs = {"wav": ("wav", None), "mp3": ("mp3", None), "flac": ("flac", None), "ogg": ("ogg", "libopus")}
    if fmt not in codecs:
        raise InvalidInput(f"unknown audio format {fmt!r}; use one of: {', '.join([*codecs, 'pcm'])}")
    container, codec = codecs[fmt]
    if codec == "libopus" and sample_rate not in (8000, 12000, 16000, 24000, 48000):
        seg = seg.set_frame_rate(48000)
    out = io.BytesIO()
    seg.export(out, format=container, codec=codec, bitrate=bitrate, tags=tags)
    return out.getvalue()


MP3_BITRATES = {1: "96k", 2: "128k"}  # podcast MP3s: mono speech, and joint stereo at the usual rate


def transcode_mp3(src: str | Path, dst: str | Path, channels: int) -> Path:
    """Re-encode a file's first audio track as an MP3 at `dst`, atomically: mono or stereo as the source is
    (more channels are mixed to stereo), the source's rate where MP3 has it. ffmpeg streams file to file."""
    ffmpeg = _require("ffmpeg")
    channels = 1 if channels == 1 else 2
    with _atomic_target(Path(dst)) as tmp:
        cmd = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(src), "-map", "0:a:0",
               "-vn", "-ac", str(channels), "-c:a", "libmp3lame", "-b:a", MP3_BITRATES[channels], "-f", "mp3", str(tmp)]
        proc = subprocess.run(cmd, capture_output=True, timeout=3600)
        reason = proc.stderr.decode(errors="replace").strip()
        # ffmpeg exits 0 when its output could not be written ("Error writing trailer of …"): read what it says
        if os.strerror(errno.ENOSPC) in reason or os.strerror(errno.EDQUOT) in reason:
            raise StorageError("no space left in the data dir; free some space and retry")
        if "Error writing" in reason or "Error closing" in reason:
            raise StorageError(f"could not write an MP3 in the data dir ({_clean(reason.splitlines()[-1])})")
        if proc.returncode != 0:
            last = reason.splitlines()[-1] if reason else f"ffmpeg exited with {proc.returncode}"
            raise AudioDecodeError(f"{Path(src).name}: could not encode an MP3 ({_clean(last)})")
    return Path(dst)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` so readers see the old file or the new one, never a torn one."""
    with _atomic_target(Path(path)) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return Path(path)


def atomic_copy(src: str | Path, dst: str | Path) -> Path:
    """Copy a file into place atomically (temp file in the target dir, then rename)."""
    with _atomic_target(Path(dst), fsync=False) as tmp:
        shutil.copyfile(src, tmp)
    return Path(dst)


@contextmanager
def _atomic_target(dst: Path, fsync: bool = True) -> Iterator[Path]:
    """A temp file beside `dst` for the block to fill: renamed over `dst` when the block ends cleanly (flushed
    to disk first with `fsync`), removed when it does not. A full disk is a `StorageError`."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        with _disk_full_is_storage_error():
            yield tmp
            if fsync:
                with open(tmp, "rb+") as f:
                    os.fsync(f.fileno())
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def _disk_full_is_storage_error():
    """A full disk becomes a `StorageError` (transient: flows retry, the API answers 503), not an OSError."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageError("no space left in the data dir; free some space and retry") from exc
        raise
