"""Audio descriptors of an episode, streamed: loudness, how much of it is sound, and music vs speech.

The music/speech estimate is the classic texture-window method (Scheirer & Slaney, ICASSP 1997;
Saunders 1996), with no model to ship. The audio is cut into 32 ms frames and 1 s texture windows;
each window that is not silent gets three votes for *speech*:

- low-energy ratio: speech is syllables and gaps, so many frames are well below the window's
  mean energy; held notes and chords keep an even level (speech > ``ler``);
- zero-crossing-rate spread: speech alternates voiced (low ZCR) and unvoiced (high ZCR) sounds,
  so the ZCR of its frames varies a lot relative to its mean (speech > ``zcr_cv``);
- 4 Hz modulation: speech energy rises and falls at the syllable rate, 2–8 Hz; the depth of the
  envelope's modulation in that band, relative to its mean, is high for speech and low for held
  or changing chords (speech > ``mod4``).

A window with at least two votes is speech, otherwise music. `music_fraction` is the share of
sounding windows called music and `speech_share_of_sound` the rest (named apart from the episode's
`transcribed_fraction`, which is the share of the whole duration inside transcribed words).
Thresholds were set on Piper speech, generated chords, and the real speech in ../shared/eval/speech
(see tests/test_features.py and bench/features.py). It is a coarse estimate: speech over a music
bed counts as speech, and sparse percussive music can read as speech.

Memory stays flat: one decode window of samples plus a few floats per second of audio.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from mediaflow.audio import SAMPLE_RATE, LoudnessMeter, stream_pcm

METHOD = "texture-ler-zcr-mod4-v1"
FRAME = 512  # 32 ms at 16 kHz
WINDOW_FRAMES = 31  # ~1 s texture window
SILENT_DBFS = -50.0  # a window quieter than this is silence, whatever the mix level
RELATIVE_GATE_DB = 35.0  # ...and so is one this far below the loud part of the episode
_DB_BINS = np.arange(-120.0, 0.5, 0.5)


@dataclass
class SpeechMusicOptions:
    ler: float = 0.28
    zcr_cv: float = 0.55
    mod4: float = 0.14
    votes: int = 2


@dataclass
class AudioDescriptors:
    """What the audio says, independent of the words. Fractions are of the whole duration."""

    duration_s: float
    loudness_dbfs: float | None
    peak_dbfs: float | None
    sound_fraction: float  # of the whole duration, the 32 ms frames above the silence gate
    music_fraction: float  # of the sounding 1 s windows, the share that reads as music
    speech_share_of_sound: float  # of the sounding 1 s windows, the share that reads as speech
    label: str  # "speech", "music" or "mixed"
    low_energy_ratio: float  # means over sounding windows, for inspection and tuning
    zcr_cv: float
    mod4: float
    method: str = METHOD

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "AudioDescriptors":
        if "speech_share_of_sound" not in d and "speech_fraction" in d:  # stored before the rename
            d = {**d, "speech_share_of_sound": d["speech_fraction"]}
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


class _Frames:
    """Per-window statistics, fed sample blocks of any size."""

    def __init__(self):
        self._carry = np.zeros(0, dtype=np.float32)
        self.rms_db: list[np.ndarray] = []
        self.stats: list[np.ndarray] = []  # per window: ler, zcr_cv, mod4
        self.frame_hist = np.zeros(len(_DB_BINS) + 1, dtype=np.int64)  # frame levels, constant memory

    def add(self, x: np.ndarray) -> None:
        x = np.concatenate([self._carry, x]) if len(self._carry) else x
        per_window = FRAME * WINDOW_FRAMES
        n = len(x) // per_window * per_window
        self._carry = x[n:].copy()
        if not n:
            return
        frames = x[:n].reshape(-1, WINDOW_FRAMES, FRAME).astype(np.float32)
        energy = np.mean(frames.astype(np.float64) ** 2, axis=2)  # (windows, frames)
        mean_e = energy.mean(1)
        self.frame_hist += np.bincount(np.digitize(10 * np.log10(np.maximum(energy.ravel(), 1e-12)), _DB_BINS),
                                       minlength=len(self.frame_hist))
        self.rms_db.append(10 * np.log10(np.maximum(mean_e, 1e-12)))
        ler = np.mean(energy < 0.5 * mean_e[:, None], axis=1)
        signs = np.signbit(frames)
        zcr = np.mean(signs[:, :, 1:] != signs[:, :, :-1], axis=2)
        zcr_cv = zcr.std(1) / np.maximum(zcr.mean(1), 1e-6)
        self.stats.append(np.stack([ler, zcr_cv, _mod4(np.sqrt(energy))], axis=1))


def _mod4(env: np.ndarray) -> np.ndarray:
    """Depth of the envelope's modulation between 2 and 8 Hz (relative to its mean), per window."""
    rate = SAMPLE_RATE / FRAME  # ~31 frames/s: bins of 1 Hz over a 1 s window
    mean = env.mean(1)
    spec = np.abs(np.fft.rfft((env - mean[:, None]) * np.hanning(env.shape[1]), axis=1)) ** 2
    freqs = np.fft.rfftfreq(env.shape[1], 1 / rate)
    band = (freqs >= 2) & (freqs <= 8)
    return np.sqrt(spec[:, band].sum(1)) / np.maximum(mean * env.shape[1], 1e-9)


def describe_samples(
    blocks: Iterable[np.ndarray], options: SpeechMusicOptions | None = None
) -> AudioDescriptors:
    """Descriptors from 16 kHz float32 mono blocks (any sizes, e.g. `stream_pcm` windows)."""
    opts = options or SpeechMusicOptions()
    frames, meter, total = _Frames(), LoudnessMeter(SAMPLE_RATE), 0
    for block in blocks:
        total += len(block)
        frames.add(block)
        meter.add(block)
    duration = total / SAMPLE_RATE
    if not frames.stats:
        return AudioDescriptors(duration, meter.loudness_dbfs, meter.peak_dbfs, 0.0, 0.0, 0.0, "silence",
                                0.0, 0.0, 0.0)
    db = np.concatenate(frames.rms_db)
    stats = np.concatenate(frames.stats)
    hist = frames.frame_hist
    cum = np.cumsum(hist) / hist.sum()
    p95 = float(_DB_BINS[min(int(np.searchsorted(cum, 0.95)), len(_DB_BINS) - 1)])
    gate = max(SILENT_DBFS, p95 - RELATIVE_GATE_DB)
    sound_frames = hist[np.searchsorted(_DB_BINS, gate, side="right"):].sum() / hist.sum()
    sounding = db > gate
    n_sound = int(sounding.sum())
    if not n_sound:
        return AudioDescriptors(duration, meter.loudness_dbfs, meter.peak_dbfs, 0.0, 0.0, 0.0, "silence",
                                0.0, 0.0, 0.0)
    s = stats[sounding]
    votes = (s[:, 0] > opts.ler).astype(int) + (s[:, 1] > opts.zcr_cv) + (s[:, 2] > opts.mod4)
    speech = float(np.mean(votes >= opts.votes))
    music = 1.0 - speech
    label = "speech" if music < 0.3 else "music" if music > 0.7 else "mixed"
    return AudioDescriptors(
        duration_s=round(duration, 3),
        loudness_dbfs=meter.loudness_dbfs,
        peak_dbfs=meter.peak_dbfs,
        sound_fraction=round(float(sound_frames), 4),
        music_fraction=round(music, 4),
        speech_share_of_sound=round(speech, 4),
        label=label,
        low_energy_ratio=round(float(s[:, 0].mean()), 4),
        zcr_cv=round(float(s[:, 1].mean()), 4),
        mod4=round(float(s[:, 2].mean()), 4),
    )


def describe_audio(path: str | Path, options: SpeechMusicOptions | None = None,
                   window_s: float = 60.0) -> AudioDescriptors:
    """Descriptors of an audio file, decoded once in `window_s` blocks (memory stays flat)."""
    return describe_samples(stream_pcm(path, window_s=window_s), options)


def resample_linear(x: np.ndarray, sr: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Cheap resampling for in-memory clips (e.g. TTS output) before `describe_samples`."""
    if sr == target or not len(x):
        return x.astype(np.float32)
    n = int(math.floor(len(x) * target / sr))
    return np.interp(np.arange(n) * (sr / target), np.arange(len(x)), x).astype(np.float32)
