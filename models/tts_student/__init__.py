"""The distilled TTS student: a small transformer acoustic model and a Vocos-style vocoder.

    voice = load_voice("models/tts_student/student.pt", threads=2)
    audio, durations = voice.from_ids([0, *ids, 0], speed=1.0)          # float32, 24 kHz
    voice.voices                                                        # the teacher voices it speaks in
    for part in voice.pieces([0, *ids, 0]): ...                         # the same audio, as it is made

Phoneme ids in Kokoro's vocab, one sentence per call; text becomes ids in mediaflow's shared frontend
(`mediaflow.tts.voices.student`, which also checks text and speed), since this package never imports
mediaflow. A missing, corrupt or foreign checkpoint raises `CheckpointError` (a ValueError) saying which.
Training (`data.py`, `train.py`, `export.py`) and the distillation corpus (`corpus.py`) live beside it.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Iterator

# OpenMP threads that spin while waiting for work burn a shared CPU: with 2 threads on 2 busy cores the
# student ran 30x slower (wall) than with PASSIVE. Read once, when torch loads: this only helps if the
# process has not imported torch yet (a service can set it in its environment instead).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from models.tts_student.data import DEFAULT_VOICE
from models.tts_student.export import FORMAT, VERSION, unpack
from models.tts_student.model import AcousticModel, StudentConfig
from models.tts_student.vocoder import Vocoder, VocoderConfig

CONTEXT = 32  # mel frames either side of a streamed piece; the vocoder sees 27 (7-wide convolutions × 9) + 2 (iSTFT)


class CheckpointError(ValueError):
    """The file is not a usable student checkpoint: missing, corrupt, or made for something else."""


class StudentModel:
    """Phoneme ids → float32 mono audio at 24 kHz, one sentence per call. `speed` is used as given."""

    max_tokens = 200  # phoneme ids per call (training sentences reach ~150): the frontend splits longer ones at clauses

    def __init__(self, acoustic: AcousticModel, vocoder: Vocoder, meta=None):
        self.acoustic, self.vocoder = acoustic.eval(), vocoder.eval()
        self.sample_rate = vocoder.cfg.sample_rate
        self.hop = vocoder.cfg.hop
        self.meta = meta or {}

    @property
    def parameters(self) -> int:
        return sum(p.numel() for m in (self.acoustic, self.vocoder) for p in m.parameters())

    @property
    def voices(self) -> list[str]:
        """The teacher voices it learned, by index (`speaker`); a one-voice student's is the first."""
        return list(self.acoustic.cfg.voices) or [DEFAULT_VOICE]

    @torch.inference_mode()
    def from_ids(self, ids: list[int], speed: float = 1.0, speaker: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Phoneme ids *with* the 0 pad at each end → (audio, durations in 600-sample frames per id)."""
        mel, durations = self.acoustic.infer(torch.as_tensor(ids, dtype=torch.long), speed, speaker)
        return self._vocode(mel), durations.numpy()

    def _vocode(self, mel: torch.Tensor) -> np.ndarray:
        return self.vocoder(mel[None])[0].clamp(-1, 1).numpy().astype(np.float32)

    @torch.inference_mode()
    def pieces(self, ids: list[int], speed: float = 1.0, first: int = 40, size: int = 400,
               speaker: int = 0) -> Iterator[np.ndarray]:
        """The audio of `from_ids` in pieces: `first` mel frames (0.5 s) as soon as they are made, then `size`.

        Each piece is vocoded with CONTEXT frames either side, more than the vocoder's receptive field,
        so the pieces join into exactly the audio of one call: streaming costs a little, changes nothing.
        """
        (frames, mask, where), _ = self.acoustic.infer_frames(torch.as_tensor(ids, dtype=torch.long), speed, speaker)
        start = 0
        head = prefix_frames(self.acoustic.cfg, first, frames.shape[1])
        if head:  # a local decoder: the first piece from a prefix, before the rest is decoded
            mel = self.acoustic.decode(frames[:, :head], mask[:, :head], where[:, :head])[0][0]
            yield self._vocode(mel[: first + CONTEXT])[: first * self.hop]
            start = first
        mel = self.acoustic.decode(frames, mask, where)[0][0]
        n = len(mel)
        while start < n:
            end = min(n, start + (first if start == 0 else size))
            lo, hi = max(0, start - CONTEXT), min(n, end + CONTEXT)
            audio = self._vocode(mel[lo:hi])
            yield audio[(start - lo) * self.hop: (end - lo) * self.hop]
            start = end


def prefix_frames(cfg: StudentConfig, first: int, total: int) -> int:
    """Duration frames to decode for the first `first` mel frames and the CONTEXT after them to come out as
    they do in the whole sentence; 0 when that is not fewer than `total` or the decoder sees everything."""
    reach = cfg.decoder_reach()
    if reach is None:
        return 0
    k = -(-(first + CONTEXT) // cfg.frames_per_step) + reach
    return k if k < total else 0


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint's dict, or CheckpointError saying what is wrong with the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no student checkpoint at {path}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint (corrupt or truncated?): {exc}") from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a mediaflow TTS student checkpoint (a training checkpoint? export it"
                              " with `python -m models.tts_student.train --part=export`)")
    if blob.get("version") != VERSION:
        raise CheckpointError(f"{path} is student checkpoint version {blob.get('version')}; this code reads {VERSION}")
    return blob


def load_voice(path: str | Path, threads: int = 0) -> StudentModel:
    """Load student.pt for inference. threads > 0 sets torch's intra-op threads (process-wide)."""
    blob = read_checkpoint(path)
    if threads:
        torch.set_num_threads(threads)
    try:
        acoustic = AcousticModel(StudentConfig(**blob["acoustic_config"]))
        vocoder = Vocoder(VocoderConfig(**blob["vocoder_config"]))
        acoustic.load_state_dict(unpack(blob["acoustic"]))
        vocoder.load_state_dict(unpack(blob["vocoder"]))
    except (KeyError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{path} does not match the student networks in this code: {exc}") from exc
    return StudentModel(acoustic, vocoder, blob.get("meta"))
