"""Speech out: the audio formats the speech endpoints offer, each streamable sentence by sentence.

    spec = check_format("mp3")                      # raises if the name is unknown or cannot be encoded here
    enc = Encoder("mp3", 24_000)                    # in this process (PyAV's libav): no ffmpeg to start
    enc.encode(chunk) + enc.encode(chunk2) + enc.finish()   # MP3 bytes as each piece is encoded
    wav_header(24_000) + pcm16(chunk) + ...         # a WAV stream of unknown length
    encode_whole(audio, 24_000, "flac")             # a finished, seekable file

`pcm` and `wav` are written here. A streamed WAV header carries 0xFFFFFFFF for both sizes, the usual
"length unknown" marker, which ffmpeg, browsers and Python's `wave` read to the end of the data.
`mp3`, `ogg-opus`, `aac` (ADTS) and `flac` are encoded in-process (`Encoder`), each packet handed out
as soon as it is made: MP3 by the system's LAME library through ctypes where there is one (the LAME that
PyAV bundles is built without its assembly and takes 3-4x the CPU: 110 vs 32 ms for 8 s of speech,
`bench/tts.py --lean`), everything else (and MP3 without a system LAME) by PyAV's libav. Starting an ffmpeg
per request cost more than the student takes to speak a sentence; the encoders' speed settings
(`SpeechFormat.codec_options`) are the fast end of each codec's range for speech at these bitrates.
`ffmpeg_command` remains for callers that want a pipe.

`check_format` is the one check of a format: `Encoder`, `ffmpeg_command` and `encode_whole` take a
name that passed it (the API route checks before the response starts; the library's callers pass constants).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import shutil
import struct
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

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
    # encoder options in-process: LAME -q 7, Opus complexity 3, AAC's fast coder without perceptual
    # noise substitution or temporal noise shaping: 2-4x faster than the defaults (measured on speech,
    # bench/tts.py --route; Opus 5 -> 3 and AAC's two tools off took another ~20 %), the same bitrates
    codec_options: dict[str, str] = field(default_factory=dict)

    @property
    def bits_per_second(self) -> int | None:
        return int(self.bitrate[:-1]) * 1000 if self.bitrate else None


FORMATS: dict[str, SpeechFormat] = {
    "wav": SpeechFormat("wav", "audio/wav"),
    "pcm": SpeechFormat("pcm", "audio/pcm"),  # media type parameters added by `media_type`
    # no Xing header: on a pipe ffmpeg cannot go back to fill in its frame count, and a wrong one misleads players
    "mp3": SpeechFormat("mp3", "audio/mpeg", "libmp3lame", "mp3", "64k", ("-write_xing", "0"),
                        {"compression_level": "7"}),
    # 200 ms Ogg pages instead of the default 1 s, so audio leaves in small steps
    "ogg-opus": SpeechFormat("ogg-opus", "audio/ogg", "libopus", "ogg", "32k", ("-page_duration", "200000"),
                             {"compression_level": "3"}),
    "aac": SpeechFormat("aac", "audio/aac", "aac", "adts", "64k", (),
                        {"aac_coder": "fast", "aac_pns": "0", "aac_tns": "0"}),
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


@lru_cache(maxsize=1)
def encoders() -> frozenset[str]:
    """The audio encoders of `FORMATS` that this process can run (PyAV's libav)."""
    try:
        import av
    except ImportError as exc:
        raise DependencyMissing("compressed speech needs PyAV: pip install av") from exc
    found = set()
    for spec in FORMATS.values():
        try:
            if spec.encoder:
                av.codec.Codec(spec.encoder, "w")
                found.add(spec.encoder)
        except Exception:  # PyAV's UnknownCodecError: this libav was built without it
            continue
    return frozenset(found)


def check_format(fmt: str) -> SpeechFormat:
    """The format's spec, or a clear error: unknown name, or a libav without the encoder it needs."""
    spec = FORMATS.get(fmt)
    if spec is None:
        raise InvalidInput(f"unknown audio format {fmt!r}; use one of: {', '.join(FORMATS)}")
    if spec.encoder and spec.encoder not in encoders():
        usable = [f for f, s in FORMATS.items() if not s.encoder or s.encoder in encoders()]
        raise UnsupportedFormat(
            f"this server cannot encode {fmt} (no `{spec.encoder}` encoder in its libav); use one of: "
            f"{', '.join(usable)}"
        )
    return spec


class _Sink:
    """A write-only file for the muxer: what it writes, taken out piece by piece (a pipe, not seekable)."""

    def __init__(self):
        self.parts: list[bytes] = []

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        return out


class Encoder:
    """float32 mono audio in, `fmt` (checked, compressed) bytes out, in this process: `encode` each piece,
    then `finish` once. Packets are handed out as soon as the codec makes them (its own lookahead aside).

    `whole=True` makes a finished file instead, with what players read lengths from filled in at the end
    (MP3's LAME/Xing frame, FLAC's STREAMINFO): `finish` then returns the complete file.
    Not for use from two threads at once. MP3 goes to `_Lame` when the system has LAME, all else `_Libav`.
    """

    def __init__(self, fmt: str, sample_rate: int, whole: bool = False):
        spec = FORMATS[fmt]
        if spec.encoder is None:
            raise InvalidInput(f"{fmt} is written without an encoder")
        lame = lame_library() if spec.encoder == "libmp3lame" else None
        self.backend = _Lame(lame, spec, sample_rate, whole) if lame else _Libav(fmt, sample_rate, whole)

    def encode(self, audio: np.ndarray) -> bytes:
        """The bytes ready after this piece (possibly none yet: codecs hold back a frame or so)."""
        return self.backend.encode(audio)

    def finish(self) -> bytes:
        """The rest: the codec flushed, the trailer written. With `whole`, the complete file."""
        return self.backend.finish()

    def close(self) -> None:
        """Let go of the codec without finishing (a client that left)."""
        self.backend.close()


@lru_cache(maxsize=1)
def lame_library() -> ctypes.CDLL | None:
    """The system's libmp3lame with the calls `_Lame` makes typed, or None where there is none."""
    name = ctypes.util.find_library("mp3lame")
    try:
        lib = ctypes.CDLL(name or "libmp3lame.so.0")
    except OSError:
        return None
    handle, i = ctypes.c_void_p, ctypes.c_int
    lib.lame_init.restype = handle
    lib.lame_init.argtypes = []
    for call in ("lame_set_in_samplerate", "lame_set_out_samplerate", "lame_set_num_channels", "lame_set_mode",
                 "lame_set_brate", "lame_set_quality", "lame_set_bWriteVbrTag"):
        getattr(lib, call).argtypes = [handle, i]
    for call in ("lame_init_params", "lame_close"):
        getattr(lib, call).argtypes = [handle]
    lib.lame_encode_buffer_ieee_float.argtypes = [handle, ctypes.c_void_p, ctypes.c_void_p, i, ctypes.c_char_p, i]
    lib.lame_encode_flush.argtypes = [handle, ctypes.c_char_p, i]
    lib.lame_get_lametag_frame.argtypes = [handle, ctypes.c_char_p, ctypes.c_size_t]
    lib.lame_get_lametag_frame.restype = ctypes.c_size_t
    return lib


class _Lame:
    """MP3 by the system's LAME (ctypes releases the GIL for each call): CBR at the format's bitrate, mono,
    quality `compression_level` (LAME's -q). A stream is bare MP3 frames, as the mp3 muxer wrote with
    `write_xing 0`; a whole file starts with LAME's Info frame, so decoders know its length and trim the
    encoder's delay and padding."""

    _MONO = 3  # LAME's MPEG_mode MONO

    def __init__(self, lib: ctypes.CDLL, spec: SpeechFormat, sample_rate: int, whole: bool):
        self.lib, self.whole = lib, whole
        self._gf = lib.lame_init()
        if not self._gf:
            raise MemoryError("lame_init failed")
        self._done = False
        self._out: list[bytes] = []
        for call, value in (("lame_set_in_samplerate", sample_rate), ("lame_set_out_samplerate", sample_rate),
                            ("lame_set_num_channels", 1), ("lame_set_mode", self._MONO),
                            ("lame_set_brate", spec.bits_per_second // 1000),
                            ("lame_set_quality", int(spec.codec_options.get("compression_level", 7))),
                            ("lame_set_bWriteVbrTag", int(whole))):
            getattr(lib, call)(self._gf, value)
        if lib.lame_init_params(self._gf) < 0:
            self.close()
            raise InvalidInput(f"LAME cannot encode {sample_rate} Hz mono at {spec.bitrate}")

    def encode(self, audio: np.ndarray) -> bytes:
        if len(audio):
            x = np.ascontiguousarray(audio, dtype=np.float32)
            buf = ctypes.create_string_buffer(len(x) * 5 // 4 + 7200)  # LAME's own worst case
            n = self.lib.lame_encode_buffer_ieee_float(self._gf, x.ctypes.data, None, len(x), buf, len(buf))
            if n < 0:
                raise RuntimeError(f"LAME failed to encode ({n})")
            data = buf.raw[:n]
        else:
            data = b""
        if self.whole:
            self._out.append(data)
            return b""
        return data

    def finish(self) -> bytes:
        if self._done:
            return b""
        buf = ctypes.create_string_buffer(7200)
        n = self.lib.lame_encode_flush(self._gf, buf, len(buf))
        tail = buf.raw[:max(n, 0)]
        if not self.whole:
            self.close()
            return tail
        data = bytearray(b"".join(self._out) + tail)
        tag = ctypes.create_string_buffer(2880)
        size = self.lib.lame_get_lametag_frame(self._gf, tag, len(tag))
        if 0 < size <= len(tag):  # written over the placeholder frame LAME put first
            data[:size] = tag.raw[:size]
        self.close()
        return bytes(data)

    def close(self) -> None:
        if not self._done:
            self._done = True
            self.lib.lame_close(self._gf)


class _Libav:
    """Any format of `FORMATS` by the libav PyAV bundles: a codec and its muxer writing to `_Sink` (or to
    a seekable buffer with `whole`, so muxers go back and fill in lengths)."""

    def __init__(self, fmt: str, sample_rate: int, whole: bool = False):
        import av

        spec = FORMATS[fmt]
        self.whole = whole
        self._file = io.BytesIO() if whole else _Sink()
        options = {"flush_packets": "1"}
        options.update(zip(spec.options[::2], spec.options[1::2]))
        options = {k.lstrip("-"): v for k, v in options.items()}
        if whole:
            options.pop("write_xing", None)  # a seekable file gets its frame count filled in
        self._container = av.open(self._file, mode="w", format=spec.muxer, options=options)
        rate = sample_rate if spec.encoder != "libopus" or sample_rate in _OPUS_RATES else 24_000
        self._stream = self._container.add_stream(spec.encoder, rate=rate, layout="mono",
                                                  options=dict(spec.codec_options))
        if spec.bits_per_second:
            self._stream.bit_rate = spec.bits_per_second
        self.sample_rate = sample_rate
        self._pts = 0
        self._done = False

    def _mux(self, frame) -> None:
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def encode(self, audio: np.ndarray) -> bytes:
        import av

        if len(audio):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio, dtype=np.float32)[None], format="flt",
                                               layout="mono")
            frame.sample_rate, frame.pts = self.sample_rate, self._pts
            self._pts += len(audio)
            self._mux(frame)
        return b"" if self.whole else self._file.take()

    def finish(self) -> bytes:
        if not self._done:
            self._done = True
            self._mux(None)
            self._container.close()
        return self._file.getvalue() if self.whole else self._file.take()

    def close(self) -> None:
        if not self._done:
            self._done = True
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - half-written output of a stream nobody reads
                pass


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
    if fmt == "pcm":
        return pcm16(audio)
    if fmt == "wav":
        return wav_header(sample_rate, len(audio)) + pcm16(audio)
    encoder = Encoder(fmt, sample_rate, whole=True)
    encoder.encode(audio)
    return encoder.finish()
