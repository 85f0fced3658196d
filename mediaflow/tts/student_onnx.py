"""The student on ONNX Runtime: the serving path, no PyTorch in the process.

    model = OnnxStudent(onnx_paths, threads=2)         # the three graphs `models/tts_student/export.py` writes
    audio, durations = model.from_ids([0, *ids, 0])    # as `models.tts_student.StudentModel.from_ids`
    for piece in model.pieces([0, *ids, 0]): ...       # the same audio as it is made

The graphs are the network's three stretches that are matrix work (encoder with duration predictor,
decoder, vocoder up to its spectrum); the steps between them are bookkeeping done here in numpy, each
the PyTorch code's twin (`models/tts_student/model.py`: `durations_from_log`, `regulate`;
`vocoder.py`: `ISTFT`), so both paths make the same audio (the tests compare them).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import numpy as np

from mediaflow.errors import DependencyMissing, ModelUnavailable

CONTEXT = 32  # mel frames either side of a streamed piece: more than the vocoder's receptive field (29)
PARTS = ("encoder", "decoder", "vocoder")
DEFAULT_VOICE = "af_heart"  # the teacher voice of a student that learned one


def _session(path: Path, threads: int):
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise DependencyMissing("the student's ONNX runtime needs onnxruntime: pip install onnxruntime") from exc
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    # no arena: it keeps the largest sentence's buffers for good (tens of MB); fresh allocations cost ~nothing here
    opts.enable_cpu_mem_arena = False
    # no busy-waiting between calls: on shared cores a spinning pool slows everyone (PyTorch's PASSIVE, here)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # the int8 weights are constants: dequantise them once at load (fold the DequantizeLinear nodes)
    opts.add_session_config_entry("session.disable_quant_qdq", "1")
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types for a missing, corrupt or foreign file
        raise ModelUnavailable(f"could not load the student's ONNX graph {path}: {exc}") from exc


class OnnxStudent:
    """Phoneme ids → float32 mono audio at 24 kHz, one sentence per call; `speed` is used as given."""

    max_tokens = 200  # as the PyTorch model: the frontend splits longer sentences at clauses

    def __init__(self, paths: dict[str, Path], threads: int = 1):
        self.paths = {p: Path(paths[p]) for p in PARTS}
        self.sessions = {p: _session(self.paths[p], max(1, threads)) for p in PARTS}
        meta = self.sessions["vocoder"].get_modelmeta().custom_metadata_map
        try:
            self.sample_rate, self.hop, self.n_fft = int(meta["sample_rate"]), int(meta["hop"]), int(meta["n_fft"])
            self.frames_per_step = int(meta["frames_per_step"])
            self.parameters = int(meta["parameters"])
            self.checkpoint_sha256 = meta["checkpoint_sha256"]
            self.config = json.loads(meta["config"])
            acoustic = json.loads(self.sessions["encoder"].get_modelmeta().custom_metadata_map["config"])
            learned = acoustic.get("voices")
            # a local decoder (models/tts_student/model.py, StudentConfig.decoder_reach): frames this far
            # ahead can change a frame's mel; None: any frame can
            window = int(acoustic.get("dec_window") or 0)
            self.reach = acoustic["dec_layers"] * (window + acoustic["ff_kernel"] // 2) if window else None
            # the teacher voices, by speaker index; a one-voice student learned the first teacher's (no speaker input)
            self.several, self.voices = bool(learned), list(learned or [DEFAULT_VOICE])
        except (KeyError, ValueError) as exc:
            raise ModelUnavailable(f"{self.paths['vocoder']} is not a student vocoder graph: {exc}") from exc
        if self.n_fft % self.hop:
            raise ModelUnavailable(f"{self.paths['vocoder']}: n_fft {self.n_fft} is not a multiple of hop {self.hop}")
        self.window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(self.n_fft) / self.n_fft)).astype(np.float32)

    # -- the acoustic model ------------------------------------------------------------------------
    def mel(self, ids: list[int], speed: float = 1.0, speaker: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """ids with their pads → (mel (2T, n_mels), durations (N,) in frames of hop × frames_per_step samples).
        `speaker`: the index of the voice, for a student of several (`voices`)."""
        frames, where, durations = self.frames(ids, speed, speaker)
        return self.decode(frames, where), durations

    def frames(self, ids: list[int], speed: float = 1.0, speaker: int = 0):
        """The encoder and the length regulator: → the decoder's frames (T, d), where (T, 2), durations (N,)."""
        feed = {"ids": np.asarray([ids], dtype=np.int64)}
        if self.several:
            feed["speaker"] = np.asarray([speaker], dtype=np.int64)
        h, log_d = self.sessions["encoder"].run(None, feed)
        durations = durations_from_log(log_d[0], speed)
        frames, where = regulate(h[0], durations)
        return frames, where, durations

    def decode(self, frames: np.ndarray, where: np.ndarray) -> np.ndarray:
        (mel,) = self.sessions["decoder"].run(None, {"h": frames[None], "where": where[None]})
        return mel[0]

    def prefix_frames(self, first: int, total: int) -> int:
        """Duration frames to decode for the first `first` mel frames and the CONTEXT after them to come out
        as in the whole sentence; 0 when that is not fewer than `total` or the decoder sees everything."""
        if self.reach is None:
            return 0
        k = -(-(first + CONTEXT) // self.frames_per_step) + self.reach
        return k if k < total else 0

    # -- the vocoder -------------------------------------------------------------------------------
    def vocode(self, mel: np.ndarray) -> np.ndarray:
        """mel (M, n_mels) → M × hop samples, clipped to [-1, 1]."""
        mag, phase = self.sessions["vocoder"].run(None, {"mel": np.ascontiguousarray(mel[None], dtype=np.float32)})
        # built in complex64 from cos and sin: `mag * np.exp(1j * phase)` is complex128 and its exp took
        # 40 % of a sentence's synthesis (21 of 48 ms for 8 s of speech); this takes 1 ms
        spec = np.empty(mag.shape[1:], np.complex64)
        spec.real, spec.imag = mag[0] * np.cos(phase[0]), mag[0] * np.sin(phase[0])
        return np.clip(self._istft(spec), -1, 1).astype(np.float32, copy=False)

    def _istft(self, spec: np.ndarray) -> np.ndarray:
        """Inverse STFT with "same" padding, as `vocoder.ISTFT`: (n_fft/2+1, M) → M × hop samples."""
        hop, k = self.hop, self.n_fft // self.hop
        m = spec.shape[1]
        frames = np.fft.irfft(spec, self.n_fft, axis=0).astype(np.float32) * self.window[:, None]
        y = np.zeros((m + k - 1, hop), np.float32)
        env = np.zeros((m + k - 1, hop), np.float32)
        for j in range(k):  # overlap-add: the j-th hop of every frame lands j hops later
            y[j: j + m] += frames[j * hop: (j + 1) * hop].T
            env[j: j + m] += np.square(self.window[j * hop: (j + 1) * hop])
        pad = (self.n_fft - hop) // 2
        y, env = y.reshape(-1)[pad: pad + m * hop], env.reshape(-1)[pad: pad + m * hop]
        return y / np.maximum(env, 1e-11)

    # -- what the voice calls ----------------------------------------------------------------------
    def from_ids(self, ids: list[int], speed: float = 1.0, speaker: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Phoneme ids *with* the 0 pad at each end → (audio, durations in frames per id)."""
        mel, durations = self.mel(ids, speed, speaker)
        return self.vocode(mel), durations

    def pieces(self, ids: list[int], speed: float = 1.0, first: int = 16, size: int = 1600,
               speaker: int = 0) -> Iterator[np.ndarray]:
        """The audio of `from_ids` in pieces, `first` mel frames then the rest, `size` at most (20 s), each
        vocoded with CONTEXT frames either side so the pieces join into the audio of one call.

        The first piece is short (0.2 s: the vocoder's share of the time to first audio is 16 + CONTEXT
        frames); the rest of a sentence is one call, because every seam costs 2 × CONTEXT frames of
        vocoding again: 0.2 s then the rest costs 8 % more CPU than one call for an 8 s sentence, 0.5 s
        pieces 23 % (bench/tts.py --lean). Encoding overlaps with the next sentence instead."""
        frames, where, _ = self.frames(ids, speed, speaker)
        start = 0
        head = self.prefix_frames(first, len(frames))
        if head:  # a local decoder: the first piece from a prefix, before the rest is decoded
            yield self.vocode(self.decode(frames[:head], where[:head])[: first + CONTEXT])[: first * self.hop]
            start = first
        mel = self.decode(frames, where)
        n = len(mel)
        while start < n:
            end = min(n, start + (first if start == 0 else size))
            lo, hi = max(0, start - CONTEXT), min(n, end + CONTEXT)
            yield self.vocode(mel[lo:hi])[(start - lo) * self.hop: (end - lo) * self.hop]
            start = end


def durations_from_log(log_d: np.ndarray, speed: float = 1.0) -> np.ndarray:
    """Predicted log(1 + frames) → whole frames scaled by 1/speed, rounded on the running sum; at least 1 each."""
    d = np.maximum(np.exp(log_d.astype(np.float32)) - 1, 0) / np.float32(speed)
    ends = np.round(np.cumsum(d, dtype=np.float32))
    return np.maximum(np.diff(ends, prepend=np.float32(0)), 1).astype(np.int64)


def regulate(h: np.ndarray, durations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Repeat row i of h (N, d) durations[i] times → frames (T, d) and where each frame sits in its id
    (T, 2): position / duration, log(1 + duration)."""
    ends = np.cumsum(durations)
    frames = np.arange(max(int(ends[-1]), 1))
    index = np.minimum(np.searchsorted(ends, frames, side="right"), len(h) - 1)
    d = np.maximum(durations[index], 1).astype(np.float32)
    start = ends[index] - d
    where = np.stack([(frames - start) / d, np.log1p(d)], -1).astype(np.float32)
    return np.ascontiguousarray(h[index], dtype=np.float32), where


def count_parameters(paths: dict[str, Path]) -> int:
    """Weights in the graphs' initializers: int8 and float tensors, not the int8 scales and zero points nor the
    exporter's integer constants (shapes, axes)."""
    import onnx
    from onnx import TensorProto

    total = 0
    for part in PARTS:
        for init in onnx.load(str(paths[part])).graph.initializer:
            if init.data_type in (TensorProto.FLOAT, TensorProto.INT8, TensorProto.FLOAT16) \
                    and not init.name.endswith((":scale", ":zero")):
                total += int(np.prod(init.dims))
    return total
