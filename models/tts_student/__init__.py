"""The distilled TTS student: a small transformer acoustic model and a Vocos-style vocoder.

    voice = load_voice("models/tts_student/student.pt", threads=2, frontend=to_ids)
    audio = voice.synthesize("Because you listened to X, try Y.")      # float32, 24 kHz
    for part in voice.stream(text, speed=1.2): ...                     # pieces of sentences, as made

`frontend` turns text into phoneme-id chunks (Kokoro's vocab, no pads); mediaflow passes its shared
frontend (`mediaflow.tts.voices`), since this package never imports mediaflow. `from_ids` needs none.
A missing, corrupt or foreign checkpoint raises `CheckpointError` (a ValueError) saying which.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Callable, Iterator

# OpenMP threads that spin while waiting for work burn a shared CPU: with 2 threads on 2 busy cores the
# student ran 30x slower (wall) than with PASSIVE. Read once, when torch loads: this only helps if the
# process has not imported torch yet (a service can set it in its environment instead).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from models.tts_student.export import FORMAT, VERSION, unpack
from models.tts_student.model import AcousticModel, StudentConfig
from models.tts_student.vocoder import Vocoder, VocoderConfig

Frontend = Callable[[str], list[list[int]]]  # text → one list of phoneme ids per sentence (no pads)
MIN_SPEED, MAX_SPEED = 0.5, 2.0
CONTEXT = 32  # mel frames either side of a streamed piece; the vocoder sees 27 (7-wide convolutions × 9) + 2 (iSTFT)


class CheckpointError(ValueError):
    """The file is not a usable student checkpoint: missing, corrupt, or made for something else."""


class StudentVoice:
    """Text or phoneme ids → float32 mono audio at 24 kHz, sentence by sentence."""

    voice_id = "student"
    max_tokens = 200  # phoneme ids per call (training sentences reach ~150): the frontend splits longer ones at clauses

    def __init__(self, acoustic: AcousticModel, vocoder: Vocoder, frontend: Frontend | None = None, meta=None):
        self.acoustic, self.vocoder = acoustic.eval(), vocoder.eval()
        self.frontend = frontend
        self.sample_rate = vocoder.cfg.sample_rate
        self.hop = vocoder.cfg.hop
        self.meta = meta or {}

    @property
    def parameters(self) -> int:
        return sum(p.numel() for m in (self.acoustic, self.vocoder) for p in m.parameters())

    @torch.inference_mode()
    def from_ids(self, ids: list[int], speed: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Phoneme ids *with* the 0 pad at each end → (audio, durations in 600-sample frames per id)."""
        mel, durations = self.acoustic.infer(torch.as_tensor(ids, dtype=torch.long), speed)
        return self._vocode(mel), durations.numpy()

    def _vocode(self, mel: torch.Tensor) -> np.ndarray:
        return self.vocoder(mel[None])[0].clamp(-1, 1).numpy().astype(np.float32)

    @torch.inference_mode()
    def pieces(self, ids: list[int], speed: float = 1.0, first: int = 40, size: int = 400) -> Iterator[np.ndarray]:
        """The audio of `from_ids` in pieces: `first` mel frames (0.5 s) as soon as they are made, then `size`.

        Each piece is vocoded with CONTEXT frames either side, more than the vocoder's receptive field,
        so the pieces join into exactly the audio of one call: streaming costs a little, changes nothing.
        """
        mel, _ = self.acoustic.infer(torch.as_tensor(ids, dtype=torch.long), speed)
        start, n = 0, len(mel)
        while start < n:
            end = min(n, start + (first if start == 0 else size))
            lo, hi = max(0, start - CONTEXT), min(n, end + CONTEXT)
            audio = self._vocode(mel[lo:hi])
            yield audio[(start - lo) * self.hop: (end - lo) * self.hop]
            start = end

    def _chunks(self, text: str, speed: float) -> list[list[int]]:
        if not MIN_SPEED <= float(speed) <= MAX_SPEED:
            raise ValueError(f"speed {speed} is out of range: use {MIN_SPEED} to {MAX_SPEED} (1.0 is normal)")
        if self.frontend is None:
            raise ValueError("this student voice was loaded without a text frontend: pass frontend= to load_voice,"
                             " or call from_ids with phoneme ids")
        return self.frontend(text)

    def stream(self, text: str, speed: float = 1.0) -> Iterator[np.ndarray]:
        """Yield audio as it is made: the first half second of each sentence, then the rest of it.
        The text is checked and phonemised before the first yield."""
        chunks = self._chunks(text, speed)
        return (piece for ids in chunks for piece in self.pieces([0, *ids, 0], speed))

    def synthesize(self, text: str, speed: float = 1.0) -> np.ndarray:
        chunks = self._chunks(text, speed)
        return np.concatenate([self.from_ids([0, *ids, 0], speed)[0] for ids in chunks])


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


def load_voice(path: str | Path, threads: int = 0, frontend: Frontend | None = None) -> StudentVoice:
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
    return StudentVoice(acoustic, vocoder, frontend, blob.get("meta"))
