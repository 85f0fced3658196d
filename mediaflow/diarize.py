"""Who speaks when: speech regions → voice embeddings → clusters → turns, offline and streamed.

`diarize(source)` returns a `Diarization`: turns labelled `S1`, `S2`, … (numbered in order of first
speech) and one voiceprint per speaker. The method, `METHOD`:

1. **Speech regions.** Silero VAD (the ONNX model faster-whisper bundles) gives a speech probability
   per 32 ms (`mediaflow.vad`: in the pipeline, the ones transcription already computed); a region
   opens above `vad_threshold`, closes after `min_silence_s` below `vad_neg_threshold`, is padded by
   `speech_pad_s` and dropped under `min_speech_s`.
2. **Pieces and embeddings.** A region is cut at its short pauses (`min_pause_s` and more: speakers
   often change there), and each part into equal pieces of about `piece_s`. Every piece is embedded by
   pyannote's speaker embedding (SincNet filters over the waveform, an x-vector TDNN, statistics
   pooling, 512-d; MIT), the ORT-format model compiled into moonshine-voice's library, read out of
   the installed package (`encoder_bytes`). A piece cut shorter than `piece_s` by a pause is embedded
   with the audio around it up to `piece_s`; otherwise pieces do not overlap, so the encoder reads each
   second of speech about once (~10 ms of CPU per second on one onnxruntime thread). Past the first
   `dense_pieces` (`sparse`), only every other piece is embedded at first; the audio of the others
   waits in a temporary file, and one is read only when its two neighbours end up with different
   speakers (or are not next to it), after which the clustering is redone with it (steps 3-4).
3. **How many speakers.** Agglomerative clustering with centroid linkage: two clusters merge while
   the cosine of their mean embeddings, corrected for their sizes (`_likeness`: a mean of few pieces
   is noisier), is at least `SAME_SPEAKER`. Two stages keep memory bounded: within blocks of
   `block_pieces` consecutive pieces, then over the blocks' clusters. A cluster with less than
   `min_speaker_share` of the speech (at least `min_speaker_s`, at most `speaker_s`) is no speaker:
   its pieces join the nearest one, so an odd stretch of one voice (a laugh, a shout, a clip played
   again) does not become a speaker of its own, while a guest with one minute in three hours does.
   When this finds one speaker, its pieces are split in two once more (k-means on the centred
   embeddings, as in step 4), and the halves are two speakers when their `_likeness` is under
   `TWO_VOICES` and each talks enough to be a speaker: two people in one room share what the encoder
   hears of the room and microphone, so their voices can sit closer than `SAME_SPEAKER` (which keeps
   apart voices that differ by recording too), while the two halves of one voice stay well above it.
   `num_speakers`, when given, replaces this step.
4. **Who speaks each piece.** Spherical k-means (`refine` rounds, started from those clusters; from
   k-means++ when the count was given) on the embeddings centred on the recording's mean, which
   removes what all its voices share (room, microphone) and splits similar voices along what differs.
5. **Turns.** A piece whose label differs from both neighbours, which agree, and is barely closer to
   its own speaker than to theirs (`flip_margin`) takes theirs. Consecutive pieces of one speaker
   become one turn when the pause between them is at most `max_gap_s`.

Limits: overlapping speech is ignored (each moment has at most one speaker: the one whose voice
dominates the piece). A change of speaker with no pause at all is placed at a piece boundary (within
about `piece_s`), and a turn shorter than a piece inside continuous speech is usually absorbed by its
neighbours. Pieces under `min_piece_s` (a "yes" between pauses) are not clustered; they take the
nearest speaker's label. Two voices the encoder hears as very alike (two women talking over each
other in one room, say) can be counted as one; `num_speakers` then still separates them.

Memory: the audio is decoded in windows of ~33 s (`mediaflow.audio.stream_pcm`) and only the open
speech region is kept; what grows with length is one 512-float embedding per piece (~5 MB per
hour of speech), and on disk the skipped pieces' audio until the end (a temporary file, ~100 MB per
hour of speech, removed when done). No speech gives `turns == []`; one voice gives one speaker.

`SAME_SPEAKER` is also the threshold of `match`, which finds an enrolled speaker's name from a
voiceprint: a voiceprint is the mean raw embedding of a speaker's pieces, the vector step 3 compares
(for means of many pieces `_likeness` is the plain cosine). Voiceprints of another method (another
encoder, another size) are never compared with these.
"""

from __future__ import annotations

import bisect
import tempfile
import threading
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from mediaflow import vad
from mediaflow.audio import SAMPLE_RATE, stream_pcm
from mediaflow.errors import InputTooLarge, InvalidInput, ModelUnavailable
from mediaflow.features import decode_vector, encode_vector

METHOD = "xvector-ahc-v5"
# SAME_SPEAKER, `rho` and `piece_s` were chosen on bench/speakers.py's tune conversations only, by a rule
# fixed beforehand (docs/benchmarks.md, "Speakers"): the middle of the thresholds that count them all right.
SAME_SPEAKER = 0.53
# The lowest likeness of the two halves of any one voice in the tune split (each voice of the tune
# conversations alone, and the tune solo recordings): 0.686, less 0.05 (docs/benchmarks.md, "Speakers").
TWO_VOICES = 0.64

_FRAME = vad.FRAME  # Silero VAD reads 32 ms frames at 16 kHz
_DIM = 512  # the speaker encoder's embedding
_MIN_INPUT = 5_000  # samples: the shortest audio the encoder's convolutions accept
_DECODE_WINDOW_S = 1024 * _FRAME / SAMPLE_RATE  # 32.768 s: a whole number of VAD frames


@dataclass(frozen=True)
class DiarizeOptions:
    """Every setting of the method. Changing a default changes the results: bump `METHOD` with it."""

    vad_threshold: float = 0.5  # speech probability that opens a region
    vad_neg_threshold: float = 0.35  # ... under which it counts as silence
    min_silence_s: float = 0.3  # this much silence closes a region
    min_pause_s: float = 0.1  # a shorter pause inside a region still cuts its pieces
    min_speech_s: float = 0.25  # shorter regions are dropped
    speech_pad_s: float = 0.1  # regions widened by this much on each side
    max_region_s: float = 30.0  # longer regions are cut here (keeps the buffer bounded)
    piece_s: float = 1.5  # regions are cut into equal pieces of about this length for embedding
    min_piece_s: float = 0.5  # shorter pieces are labelled by their nearest speaker, not clustered
    same_speaker: float = SAME_SPEAKER  # centroid cosine above which two clusters merge
    block_pieces: int = 400  # first-stage clustering block (memory bound: block² similarities)
    # a speaker talks for min_speaker_share of the speech, at least min_speaker_s; speaker_s always suffices
    min_speaker_s: float = 2.0
    min_speaker_share: float = 0.05
    speaker_s: float = 60.0
    two_voices: float = TWO_VOICES  # one speaker found: two halves less alike than this are two (0: never)
    rho: float = 0.40  # expected cosine of two pieces of one voice (see `_likeness`): the tune set's mean
    refine: int = 3  # k-means rounds after the count, on centred embeddings
    flip_margin: float = 0.1  # an isolated piece this close to its neighbours' speaker joins them
    max_gap_s: float = 1.0  # same-speaker pieces closer than this form one turn
    batch_pieces: int = 64  # pieces queued for the encoder (~4 MB of audio)
    # after the first `dense_pieces`, embed every other piece; one between two neighbours of one speaker
    # takes theirs unread (the encoder is most of the cost, and a voice rarely changes for one piece and
    # back). A short recording is read whole: with few pieces each one's evidence counts for the count.
    sparse: bool = True
    dense_pieces: int = 240  # ~6 minutes of speech


@dataclass(frozen=True)
class Turn:
    start: float
    end: float
    speaker: str


@dataclass
class Diarization:
    """Turns, sorted and non-overlapping, with the consecutive turns of one speaker merged when the
    pause between them is at most `DiarizeOptions.max_gap_s`; a longer pause separates two turns
    of the same speaker. `voiceprints`: label → unit-length mean embedding (float32, 512-d)."""

    turns: list[Turn]
    voiceprints: dict[str, np.ndarray]
    method: str = METHOD
    duration_s: float = 0.0
    _ends: list[float] = field(default_factory=list, init=False, repr=False, compare=False)

    @property
    def speakers(self) -> list[str]:
        """The labels in order of first speech."""
        return list(dict.fromkeys(t.speaker for t in self.turns))

    def talk_time(self) -> dict[str, float]:
        """Seconds of turns per speaker."""
        out: dict[str, float] = {}
        for t in self.turns:
            out[t.speaker] = out.get(t.speaker, 0.0) + t.end - t.start
        return out

    def speaker_at(self, start: float, end: float) -> str | None:
        """The speaker whose turns overlap [start, end] most; None when no turn overlaps it. A
        zero-length span counts the turn that contains its point."""
        if len(self._ends) != len(self.turns):
            self._ends = [t.end for t in self.turns]
        overlap: dict[str, float] = {}
        i = bisect.bisect_left(self._ends, start)
        while i < len(self.turns) and self.turns[i].start <= end:
            t = self.turns[i]
            o = min(end, t.end) - max(start, t.start)
            if o > 0 or (o == 0 and start == end):
                overlap[t.speaker] = overlap.get(t.speaker, 0.0) + o
            i += 1
        return max(overlap, key=overlap.__getitem__) if overlap else None

    def nearest_speaker(self, start: float, end: float, within: float) -> str | None:
        """The speaker of the turn closest to [start, end], if it is at most `within` seconds away: for
        words Whisper heard where no turn is (a short "Hello?" the speech detection left out)."""
        if len(self._ends) != len(self.turns):
            self._ends = [t.end for t in self.turns]
        i = bisect.bisect_left(self._ends, start)
        best, gap = None, within
        for t in self.turns[max(0, i - 1):i + 1]:
            d = max(t.start - end, start - t.end, 0.0)
            if d <= gap:
                best, gap = t.speaker, d
        return best

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "duration_s": self.duration_s,
            "turns": [{"start": t.start, "end": t.end, "speaker": t.speaker} for t in self.turns],
            "voiceprints": {k: encode_vector(v) for k, v in self.voiceprints.items()},
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Diarization":
        return cls(
            turns=[Turn(float(t["start"]), float(t["end"]), str(t["speaker"])) for t in d.get("turns", [])],
            voiceprints={str(k): decode_vector(v) for k, v in (d.get("voiceprints") or {}).items()},
            method=str(d.get("method", "")),
            duration_s=float(d.get("duration_s", 0.0)),
        )


def match(voiceprint: np.ndarray, library: dict[str, np.ndarray], threshold: float = SAME_SPEAKER) -> str | None:
    """The enrolled name whose voiceprint is closest to `voiceprint` by cosine, if above `threshold`.
    Enrolled prints of another size (an older encoder's) are skipped: they live in another space."""
    v = np.asarray(voiceprint, dtype=np.float32)
    names = [n for n in library if np.shape(library[n]) == v.shape]
    if not names:
        return None
    sims = _unit(np.stack([np.asarray(library[n], dtype=np.float32) for n in names])) @ _unit(v)
    best = int(np.argmax(sims))
    return names[best] if sims[best] > threshold else None


def diarize(source: str | Path | np.ndarray, *, max_duration_s: float | None = None,
            num_speakers: int | None = None, options: DiarizeOptions | None = None,
            speech: np.ndarray | None = None) -> Diarization:
    """Who speaks when in `source`: a file (stream-decoded, memory stays flat) or 16 kHz mono float32.

    `num_speakers`, when known, replaces the count: the pieces are split into that many speakers
    (k-means on the centred embeddings). `speech`: the VAD's probabilities for this audio, one per
    `vad.FRAME` samples, when the transcription step kept them (`mediaflow.vad`); else the VAD runs
    here. `options` is for experiments; results made with other options than the defaults are not
    what `METHOD` names.
    Raises `AudioDecodeError` for what ffmpeg cannot read, `InputTooLarge` past `max_duration_s`.
    """
    opts = options or DiarizeOptions()
    if num_speakers is not None and num_speakers < 1:
        raise InvalidInput(f"num_speakers must be at least 1, not {num_speakers}")
    pieces, duration = _embed_speech(_windows(source, max_duration_s), opts, speech)
    try:
        labels, sims, x = _assign(pieces, opts, num_speakers)
    finally:
        pieces.close()
    return _turns(pieces, labels, sims, x, duration, opts)


def embed_pieces(source: str | Path | np.ndarray, options: DiarizeOptions | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every piece the method cuts, for analysis: start and end times (s) and unit embeddings."""
    pieces, _ = _embed_speech(_windows(source, None), replace(options or DiarizeOptions(), sparse=False))
    return np.asarray(pieces.starts), np.asarray(pieces.ends), pieces.matrix()


# -- audio in ----------------------------------------------------------------------------------------


def _windows(source: str | Path | np.ndarray, max_duration_s: float | None) -> Iterator[np.ndarray]:
    if isinstance(source, np.ndarray):
        x = np.asarray(source, dtype=np.float32)
        if x.ndim != 1:
            raise InvalidInput("diarize: an array must be mono (one dimension) at 16 kHz")
        if max_duration_s is not None and len(x) > max_duration_s * SAMPLE_RATE:
            raise InputTooLarge(f"{len(x) / SAMPLE_RATE / 3600:.1f} h of audio is over the "
                                f"{max_duration_s / 3600:.1f} h limit")
        step = int(_DECODE_WINDOW_S * SAMPLE_RATE)
        return (x[i:i + step] for i in range(0, len(x), step))
    return stream_pcm(source, window_s=_DECODE_WINDOW_S, max_duration_s=max_duration_s)


@dataclass
class _Pieces:
    """What the clustering sees: per piece its span (seconds) and, for the pieces read so far, its
    unit embedding. The audio of the unread ones waits in a temporary file (memory stays flat)."""

    starts: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)
    vectors: list[np.ndarray] = field(default_factory=list)  # one (n, _DIM) array per encoder batch, read pieces
    unread: dict[int, tuple[int, int]] = field(default_factory=dict)  # piece → (byte offset, samples) in spill
    spill: object = None  # the temporary file, opened with the first unread piece

    def __len__(self) -> int:
        return len(self.starts)

    def matrix(self) -> np.ndarray:
        """The embeddings of the read pieces, in time order."""
        if len(self.vectors) != 1:  # joined once, then shared
            self.vectors = [np.concatenate(self.vectors) if self.vectors else np.zeros((0, _DIM), np.float32)]
        return self.vectors[0]

    def put_aside(self, wave: np.ndarray) -> None:
        if self.spill is None:
            self.spill = tempfile.TemporaryFile()
        self.spill.seek(0, 2)
        self.unread[len(self.starts)] = (self.spill.tell(), len(wave))
        self.spill.write(np.ascontiguousarray(wave, np.float32).tobytes())

    def audio(self, i: int) -> np.ndarray:
        at, n = self.unread[i]
        self.spill.seek(at)
        return np.frombuffer(self.spill.read(n * 4), np.float32)

    def close(self) -> None:
        if self.spill is not None:
            self.spill.close()


class _Regions:
    """Silero-style hysteresis over a stream of per-frame speech probabilities; yields closed regions
    as (start_frame, end_frame) once the silence after them is long enough to be sure."""

    def __init__(self, opts: DiarizeOptions):
        fps = SAMPLE_RATE / _FRAME
        self.opts = opts
        self.min_silence = max(1, round(opts.min_silence_s * fps))
        self.min_speech = round(opts.min_speech_s * fps)
        self.max_region = round(opts.max_region_s * fps)
        self.start: int | None = None
        self.silence_from: int | None = None

    def push(self, probs: np.ndarray, first: int) -> list[tuple[int, int]]:
        out = []
        o = self.opts
        for k, p in enumerate(probs):
            i = first + k
            if self.start is None:
                if p >= o.vad_threshold:
                    self.start, self.silence_from = i, None
                continue
            if p >= o.vad_threshold:
                self.silence_from = None
            elif p < o.vad_neg_threshold and self.silence_from is None:
                self.silence_from = i
            if self.silence_from is not None and i - self.silence_from >= self.min_silence:
                self._close(self.silence_from, out)
                self.start = None
            elif i - self.start >= self.max_region:  # a long stretch without a pause: cut it
                self._close(i, out)
                self.start = i
        return out

    def flush(self, end: int) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        if self.start is not None:
            self._close(self.silence_from if self.silence_from is not None else end, out)
            self.start = None
        return out

    def _close(self, end: int, out: list) -> None:
        if end - self.start >= self.min_speech:
            out.append((self.start, end))

    @property
    def open_from(self) -> int | None:
        return self.start


def _embed_speech(windows: Iterable[np.ndarray], opts: DiarizeOptions, speech: np.ndarray | None = None
                  ) -> tuple[_Pieces, float]:
    """Stream the audio once: VAD per window (or `speech`, its probabilities given), closed regions cut
    into pieces and embedded. Holds the undecided audio only (from the open region's start, or the
    padding before now)."""
    regions = _Regions(opts)
    pieces = _Pieces()
    queue: list[tuple[float, float, np.ndarray]] = []  # pieces waiting for the encoder: start, end, audio
    pad = int(opts.speech_pad_s * SAMPLE_RATE)
    buf = np.zeros(0, np.float32)
    buf_at = 0  # sample index of buf[0]
    probs = np.zeros(0, np.float32)  # speech probability per VAD frame, from frame probs_at on
    probs_at = 0
    total = 0  # samples read
    done_vad = 0  # samples the VAD has read (whole frames)
    last_end = 0  # end sample of the last region emitted (padding never reaches back past it)

    def step(chunk: np.ndarray) -> None:
        nonlocal probs, done_vad
        if speech is None:
            p = vad.probabilities(chunk)
        else:  # a track a frame short at the end reads as silence there
            given = speech[done_vad // _FRAME:(done_vad + len(chunk)) // _FRAME]
            p = np.pad(given, (0, len(chunk) // _FRAME - len(given)))
        probs = np.concatenate([probs, p])
        found = regions.push(p, done_vad // _FRAME)
        done_vad += len(p) * _FRAME
        emit(found, total)

    def emit(found: list[tuple[int, int]], limit: int) -> None:
        nonlocal last_end
        for a, b in found:
            s = max(a * _FRAME - pad, last_end, 0)
            e = min(b * _FRAME + pad, limit)
            last_end = e
            pauses = _pauses(probs[a - probs_at:b - probs_at], opts)
            cuts = [(a + m) * _FRAME - s for m in pauses]
            _queue_region(buf[s - buf_at:e - buf_at], s / SAMPLE_RATE, cuts, opts, queue)
            if len(queue) >= opts.batch_pieces:
                _flush(queue, pieces, opts)

    for w in windows:
        buf = np.concatenate([buf, w]) if len(buf) else np.array(w, dtype=np.float32)
        total += len(w)
        n = (total - done_vad) // _FRAME * _FRAME
        if n:
            step(buf[done_vad - buf_at:done_vad - buf_at + n])
        keep_from = done_vad - pad - _FRAME if regions.open_from is None else regions.open_from * _FRAME - pad
        keep_from = max(buf_at, min(keep_from, total)) // _FRAME * _FRAME
        buf, buf_at = buf[keep_from - buf_at:], keep_from
        probs, probs_at = probs[keep_from // _FRAME - probs_at:], keep_from // _FRAME
    tail = total - done_vad  # under one frame: the VAD pads it like faster-whisper does
    if tail:
        step(np.pad(buf[done_vad - buf_at:], (0, _FRAME - tail)))
    emit(regions.flush(-(-total // _FRAME)), total)
    _flush(queue, pieces, opts)
    return pieces, total / SAMPLE_RATE


def _pauses(p: np.ndarray, opts: DiarizeOptions) -> list[int]:
    """The middle frame of each short pause inside a region: `min_pause_s` or more under the
    silence threshold (longer ones, over `min_silence_s`, already end regions). Speakers often
    change at such a pause, so pieces are cut there first."""
    quiet = np.concatenate([[False], p < opts.vad_neg_threshold, [False]])
    edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
    need = max(1, round(opts.min_pause_s * SAMPLE_RATE / _FRAME))
    return [int((a + b) // 2) for a, b in zip(edges[::2], edges[1::2]) if b - a >= need and a > 0 and b < len(p)]


def _queue_region(x: np.ndarray, at: float, cuts: list[int], opts: DiarizeOptions, queue: list) -> None:
    """Cut one speech region (samples, starting at `at` s) at its pauses (`cuts`, in samples), each
    part into equal pieces of about `piece_s`, and queue each piece with the audio the encoder reads:
    the piece, widened to `piece_s` inside the region when it is shorter (a piece cut short by a
    pause still gets a full window's worth of voice)."""
    if len(x) < _MIN_INPUT:
        x = np.pad(x, (0, _MIN_INPUT - len(x)))
    bounds = [0] + [c for c in cuts if 0 < c < len(x)] + [len(x)]
    need = max(_MIN_INPUT, int(opts.piece_s * SAMPLE_RATE))
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        n = max(1, round((hi - lo) / SAMPLE_RATE / opts.piece_s))
        edges = np.linspace(lo, hi, n + 1).astype(int)
        for a, b in zip(edges[:-1], edges[1:]):
            wa, wb = a, b
            if wb - wa < need:  # centred, shifted back inside the region at its edges
                wa = min(max(0, (a + b - need) // 2), max(0, len(x) - need))
                wb = min(len(x), wa + need)
            queue.append((at + a / SAMPLE_RATE, at + b / SAMPLE_RATE, x[wa:wb].copy()))


def _flush(queue: list, pieces: _Pieces, opts: DiarizeOptions) -> None:
    """Embed the queued pieces (with `sparse`, every other one after the first `dense_pieces`; the
    rest are put aside) and append them in time order."""
    if not queue:
        return
    out = []
    for start, end, wave in queue:
        read = not opts.sparse or len(pieces) < opts.dense_pieces or (len(pieces) - opts.dense_pieces) % 2 == 0
        if read:
            out.append(_embed(wave))
        else:
            pieces.put_aside(wave)
        pieces.starts.append(start)
        pieces.ends.append(end)
    if out:
        pieces.vectors.append(_unit(np.stack(out)))
    queue.clear()


def _embed(wave: np.ndarray) -> np.ndarray:
    # one piece per call: the exported graph's instance norm takes a batch of one only
    return _encoder().run(None, {"waveform": wave[None].astype(np.float32)})[0][0]


_encoder_lock = threading.Lock()

# pyannote's speaker embedding (SincNet + x-vector TDNN, 512-d, MIT) as the ORT-format model that
# moonshine-voice 0.0.49 (MIT) compiles into its library. The same bytes sit in each of its wheels'
# libraries (libmoonshine.so for x86_64 and aarch64 Linux, moonshine.dll, libmoonshine.dylib) at
# different offsets, so they are found by the ORT format's file identifier and checked by their digest.
_ENCODER_PACKAGE = "moonshine_voice"
_ENCODER_LENGTH = 17_639_174
_ENCODER_SHA256 = "22c29180ce01c7763d03a9d1b1f10ffb2e9e18900bf9da0ed6bad8e6c4c56ccf"
_ORT_IDENTIFIER = b"ORTM"  # a flatbuffer's identifier: bytes 4-8 of the model


def encoder_bytes() -> bytes:
    """The speaker encoder's model, read out of the installed moonshine-voice package's library (the
    package is not imported) and checked against its pinned digest."""
    import hashlib
    import importlib.util

    spec = importlib.util.find_spec(_ENCODER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable("the speaker encoder needs the moonshine-voice==0.0.49 package")
    folder = Path(list(spec.submodule_search_locations)[0])
    for path in sorted(folder.glob("*moonshine*.*")):
        if path.suffix not in (".so", ".dll", ".dylib"):
            continue
        data = path.read_bytes()
        at = data.find(_ORT_IDENTIFIER, 4)
        while at >= 0:
            blob = data[at - 4:at - 4 + _ENCODER_LENGTH]
            if len(blob) == _ENCODER_LENGTH and hashlib.sha256(blob).hexdigest() == _ENCODER_SHA256:
                return blob
            at = data.find(_ORT_IDENTIFIER, at + 1)
    raise ModelUnavailable(f"no library in {folder} holds the pinned speaker encoder (moonshine-voice==0.0.49 needed)")


@lru_cache(maxsize=1)
def _encoder():
    """The speaker encoder as an onnxruntime session on one thread (leaves the other core to Whisper)."""
    import onnxruntime as ort

    with _encoder_lock:
        blob = encoder_bytes()
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        so.enable_cpu_mem_arena = False  # pieces differ in length: an arena would keep every size's buffers
        return ort.InferenceSession(blob, so, providers=["CPUExecutionProvider"])


# -- clusters ----------------------------------------------------------------------------------------


def _unit(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(n, 1e-12)).astype(np.float32)


def _ahc(sums: np.ndarray, counts: np.ndarray, threshold: float, rho: float, k: int | None = None) -> np.ndarray:
    """Centroid-linkage agglomerative clustering. Row i is the sum of `counts[i]` pieces' unit vectors
    (weighted by length). The closest two clusters merge while their `_likeness` is at least
    `threshold`, or, with `k`, until k are left. Returns each row's cluster (0.., in order of first row)."""
    n = len(sums)
    if n == 0:
        return np.zeros(0, int)
    cur = sums.astype(np.float64).copy()
    cnt = counts.astype(np.float64).copy()
    owner = np.arange(n)
    alive = np.ones(n, bool)
    sim = _likeness(cur, cnt, cur, cnt, rho)
    np.fill_diagonal(sim, -np.inf)
    left = n
    while left > 1:
        i, j = np.unravel_index(int(np.argmax(sim)), sim.shape)
        if (k is None and sim[i, j] < threshold) or (k is not None and left <= k):
            break
        cur[i] += cur[j]
        cnt[i] += cnt[j]
        alive[j] = False
        owner[owner == j] = i
        sim[j, :] = sim[:, j] = -np.inf
        row = _likeness(cur[i:i + 1], cnt[i:i + 1], cur[alive], cnt[alive], rho)[0]
        sim[i, alive] = sim[alive, i] = row
        sim[i, i] = -np.inf
        left -= 1
    _, first = np.unique(owner, return_index=True)
    order = {o: r for r, o in enumerate(owner[np.sort(first)])}
    return np.array([order[o] for o in owner])


def _likeness(a: np.ndarray, na: np.ndarray, b: np.ndarray, nb: np.ndarray, rho: float) -> np.ndarray:
    """Cosine of cluster means, divided by what it would be for one speaker: `rho` is the expected
    cosine of two single pieces of one voice, and a mean of n pieces is closer to the voice's
    centroid (squared norm rho + (1 - rho) / n). So the result estimates the cosine of the two
    voices' true centroids, whatever the clusters' sizes, and one threshold serves all of them."""
    cos = _unit(a) @ _unit(b).T
    fa = rho + (1 - rho) / np.maximum(na, 1e-3)
    fb = rho + (1 - rho) / np.maximum(nb, 1e-3)
    return cos * np.sqrt(np.outer(fa, fb)) / rho


def _cluster(x: np.ndarray, dur: np.ndarray, opts: DiarizeOptions, k: int | None, talk: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """Each piece's speaker index and similarity to each speaker (pieces × speakers), from the unit
    embeddings `x` and durations `dur` (`talk`: the seconds each stands for, when more than its own);
    and how to place more pieces (`_similarities`): the centre and the speakers' centroids.

    The count comes from `_count` (raw embeddings, one threshold), or is `k`. The pieces are then
    assigned by spherical k-means on embeddings centred on this recording's mean: what all its
    voices share (the room, the microphone, what the encoder gives every voice) drops out, and two similar
    voices that the count could only just tell apart are split along what differs between them.
    """
    if not len(x):
        return np.zeros(0, int), np.zeros((0, 0), np.float32), None, np.zeros((0, _DIM), np.float32)
    solid = dur >= opts.min_piece_s
    if not solid.any():
        solid = dur >= dur.max()
    weight = np.where(solid, dur, 0.0).astype(np.float32)
    y = _unit(x - weight @ x / weight.sum())
    if k is None:
        talk = dur if talk is None else talk
        init = _count(x[solid], dur[solid], opts, talk[solid])
        if init.max() == 0 and opts.two_voices > 0:
            init = _two_voices(x[solid], y[solid], dur[solid], opts, talk[solid])
        k = int(init.max()) + 1
    else:
        k, init = min(k, int(solid.sum())), None
    if k == 1:
        centroids = _unit((x[solid] * dur[solid, None]).sum(0))[None]
        return np.zeros(len(x), int), x @ centroids.T, None, centroids
    if init is None:
        init = _kmeans(y[solid], dur[solid], k)
    lab = np.full(len(x), -1)
    lab[solid] = init
    for _ in range(max(1, opts.refine)):  # k-means rounds from the clusters found
        centroids = np.stack([np.where(lab == c, weight, 0) @ y for c in range(k)])
        centroids = _unit(centroids[np.abs(centroids).sum(1) > 0])
        lab = np.where(solid, np.argmax(y @ centroids.T, axis=1), -1)
    centre = weight @ x / weight.sum()
    sims = _similarities(x, centre, centroids)
    return np.argmax(sims, axis=1), sims, centre, centroids


def _similarities(x: np.ndarray, centre: np.ndarray | None, centroids: np.ndarray) -> np.ndarray:
    """Pieces' similarity to each speaker: on centred embeddings, or raw ones when there is one speaker."""
    return (x if centre is None else _unit(x - centre)) @ centroids.T


def _assign(pieces: _Pieces, opts: DiarizeOptions, k: int | None, rounds: int = 3
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every piece's speaker, similarities and embedding (a zero row where it stayed unread).

    The read pieces are clustered, each standing also for half of each unread neighbour's seconds
    (so a speaker's talk is not halved). An unread piece between two read neighbours of one speaker,
    each within `max_gap_s`, takes theirs; the others are read and the clustering is redone with them,
    up to `rounds` times; what is still undecided then is read and placed by its similarities."""
    n = len(pieces)
    starts, ends = np.asarray(pieces.starts), np.asarray(pieces.ends)
    dur = ends - starts
    has = np.ones(n, bool)
    has[list(pieces.unread)] = False
    x = np.zeros((n, _DIM), np.float32)
    x[has] = pieces.matrix()
    gap_ok = np.zeros(n + 1, bool)  # gap_ok[i]: pieces i-1 and i are within max_gap_s
    gap_ok[1:n] = starts[1:] - ends[:-1] <= opts.max_gap_s
    for r in range(rounds + 1):
        talk = np.where(has, dur, 0.0)
        for i in np.flatnonzero(~has):  # an unread piece's neighbours are read: they alternate
            side = [j for j in (i - 1, i + 1) if 0 <= j < n and has[j]]
            talk[side] += dur[i] / max(1, len(side))
        lab_read, sims_read, centre, centroids = _cluster(x[has], dur[has], opts, k, talk[has])
        labels, sims = np.zeros(n, int), np.zeros((n, sims_read.shape[1]), np.float32)
        labels[has], sims[has] = lab_read, sims_read
        todo = []
        for i in np.flatnonzero(~has):
            if 0 < i < n - 1 and gap_ok[i] and gap_ok[i + 1] and labels[i - 1] == labels[i + 1]:
                labels[i], sims[i] = labels[i - 1], (sims[i - 1] + sims[i + 1]) / 2
            else:
                todo.append(i)
        if not todo:
            break
        x[todo] = _unit(np.stack([_embed(pieces.audio(i)) for i in todo]))
        has[todo] = True
        if r == rounds:
            sims[todo] = _similarities(x[todo], centre, centroids)
            labels[todo] = np.argmax(sims[todo], axis=1)
    return labels, sims, x


def _kmeans(y: np.ndarray, dur: np.ndarray, k: int) -> np.ndarray:
    from sklearn.cluster import KMeans

    return KMeans(k, n_init=10, random_state=0).fit(y, sample_weight=dur).labels_


def _speaker_talk(talk: np.ndarray, opts: DiarizeOptions) -> np.ndarray:
    """Which clusters, by their seconds of speech, talk enough to be speakers."""
    return talk >= min(max(opts.min_speaker_s, opts.min_speaker_share * talk.sum()), opts.speaker_s)


def _two_voices(x: np.ndarray, y: np.ndarray, dur: np.ndarray, opts: DiarizeOptions,
                talk: np.ndarray | None = None) -> np.ndarray:
    """The pieces `_count` took for one speaker (raw `x`, centred `y`) split in two: labels 0/1 when the
    halves are less alike than `two_voices` and each talks enough to be a speaker, else all 0."""
    none = np.zeros(len(x), int)
    if len(x) < 4:
        return none
    lab = _kmeans(y, dur, 2)
    w, cnt = x * dur[:, None], dur / opts.piece_s
    sums = np.stack([w[lab == c].sum(0) for c in (0, 1)])
    counts = np.array([cnt[lab == c].sum() for c in (0, 1)])
    alike = _likeness(sums[:1], counts[:1], sums[1:], counts[1:], opts.rho)[0, 0]
    talk = dur if talk is None else talk
    if alike >= opts.two_voices or not _speaker_talk(np.bincount(lab, weights=talk, minlength=2), opts).all():
        return none
    return lab if lab[0] == 0 else 1 - lab


def _count(x: np.ndarray, dur: np.ndarray, opts: DiarizeOptions, talk: np.ndarray | None = None) -> np.ndarray:
    """Speakers by agglomerative clustering of the raw embeddings, in two stages so memory stays
    bounded: within blocks of consecutive pieces, then over the blocks' clusters. Clusters with too
    little speech are not speakers: their pieces join the nearest one that is. Returns each piece's
    speaker index (0..)."""
    w, cnt = x * dur[:, None].astype(np.float32), dur / opts.piece_s
    sub_of = np.zeros(len(x), int)
    sub_sums, sub_cnt = [], []
    for b in range(0, len(x), opts.block_pieces):
        wb, cb = w[b:b + opts.block_pieces], cnt[b:b + opts.block_pieces]
        lab = _ahc(wb, cb, opts.same_speaker, opts.rho)
        sub_of[b:b + opts.block_pieces] = lab + len(sub_sums)
        for c in range(lab.max() + 1):
            sub_sums.append(wb[lab == c].sum(0))
            sub_cnt.append(cb[lab == c].sum())
    lab = _ahc(np.stack(sub_sums), np.array(sub_cnt), opts.same_speaker, opts.rho)[sub_of]
    talk = np.bincount(lab, weights=dur if talk is None else talk)
    big = _speaker_talk(talk, opts)
    if not big.any():
        big = talk >= talk.max()
    centroids = _unit(np.stack([w[lab == c].sum(0) for c in np.flatnonzero(big)]))
    return np.argmax(x @ centroids.T, axis=1)


# -- turns -------------------------------------------------------------------------------------------


def _turns(pieces: _Pieces, labels: np.ndarray, sims: np.ndarray, x: np.ndarray, duration: float,
           opts: DiarizeOptions) -> Diarization:
    """`x`: each piece's unit embedding, a zero row for a piece left unread (it adds nothing to a voiceprint)."""
    if not len(labels):
        return Diarization([], {}, METHOD, round(duration, 3))
    starts, ends = np.asarray(pieces.starts), np.asarray(pieces.ends)
    labels = labels.copy()
    for i in range(1, len(labels) - 1):  # an isolated flip the evidence barely supports
        a, b, c = labels[i - 1], labels[i], labels[i + 1]
        if a == c != b and sims[i, b] - sims[i, a] < opts.flip_margin:
            labels[i] = a
    spans: list[list] = []
    for s, e, lab in zip(starts, ends, labels):
        if spans and spans[-1][2] == lab and s - spans[-1][1] <= opts.max_gap_s:
            spans[-1][1] = float(e)
        else:
            spans.append([float(s), float(e), int(lab)])
    names: dict[int, str] = {}
    for _, _, lab in spans:
        names.setdefault(lab, f"S{len(names) + 1}")
    turns = [Turn(round(s, 3), round(e, 3), names[lab]) for s, e, lab in spans]
    dur = ends - starts
    prints = {}
    for lab, name in names.items():  # voiceprints from the raw embeddings: comparable across recordings
        m = labels == lab
        prints[name] = _unit((x[m] * dur[m, None]).sum(0))
    return Diarization(turns, prints, METHOD, round(duration, 3))
