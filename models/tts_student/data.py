"""The distillation data on disk, and the log-mel the student is trained to predict.

A shard (`data/distill/shards/0007.npz`) holds what the teacher said for about 40 sentences:
`text`, `phonemes`, `ids` (int16, with the 0 pad at each end), `durations` (int16, frames of 600
samples per id), `audio` (int16 at 24 kHz), and `n_ids` / `n_audio` to cut the concatenated arrays
back into utterances. `sum(durations) * 600 == len(audio)` for every utterance.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

TEACHER_HOP = 600  # samples per duration frame


@dataclass(frozen=True)
class MelConfig:
    sample_rate: int = 24_000
    n_fft: int = 1024
    win_length: int = 1024
    hop: int = 300
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float = 12_000.0
    floor: float = 1e-5  # log(amplitude) is clamped here: about -11.5

    def to_dict(self) -> dict:
        return asdict(self)


class LogMel(torch.nn.Module):
    """audio (..., samples) → natural-log mel amplitude (..., samples // hop, n_mels).

    Centred frames; the one past the end is dropped, so 600·n samples give exactly 2·n frames.
    """

    def __init__(self, cfg: MelConfig = MelConfig()):
        super().__init__()
        import torchaudio

        self.cfg = cfg
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=cfg.sample_rate, n_fft=cfg.n_fft, win_length=cfg.win_length, hop_length=cfg.hop,
            f_min=cfg.f_min, f_max=cfg.f_max, n_mels=cfg.n_mels, power=1.0, center=True, pad_mode="reflect",
        )

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        m = self.mel(audio)[..., : audio.shape[-1] // self.cfg.hop]
        return torch.log(m.clamp_min(self.cfg.floor)).transpose(-1, -2)


DEFAULT_VOICE = "af_heart"  # the teacher voice of shards that do not name theirs


def write_shard(items: list[dict]) -> bytes:
    """Utterances ({text, phonemes, ids, durations, audio float32, voice}) → the bytes of one .npz shard."""
    buf = io.BytesIO()
    np.savez(
        buf,
        text=np.array([u["text"] for u in items]), phonemes=np.array([u["phonemes"] for u in items]),
        ids=np.concatenate([u["ids"] for u in items]).astype(np.int16),
        durations=np.concatenate([u["durations"] for u in items]).astype(np.int16),
        n_ids=np.array([len(u["ids"]) for u in items], np.int32),
        audio=np.concatenate([np.clip(u["audio"] * 32767, -32768, 32767) for u in items]).astype(np.int16),
        n_audio=np.array([len(u["audio"]) for u in items], np.int32),
        voice=np.array([u.get("voice", DEFAULT_VOICE) for u in items]),
    )
    return buf.getvalue()


def read_shard(path: str | Path) -> list[dict]:
    """A shard as utterances: {text, ids int64, durations int64, audio int16, voice} (shards written
    before voices were recorded are the first teacher voice's, `DEFAULT_VOICE`)."""
    with np.load(path) as z:  # each z[key] reads and decompresses anew: once per array, not per utterance
        z = {k: z[k] for k in z.files}
    out, i0, a0 = [], 0, 0
    for j, (ni, na) in enumerate(zip(z["n_ids"], z["n_audio"])):
        out.append({
            "text": str(z["text"][j]), "ids": z["ids"][i0: i0 + ni].astype(np.int64),
            "durations": z["durations"][i0: i0 + ni].astype(np.int64), "audio": z["audio"][a0: a0 + na],
            "voice": str(z["voice"][j]) if "voice" in z else DEFAULT_VOICE,
        })
        i0, a0 = i0 + ni, a0 + na
    return out


def mel_path(shard: Path) -> Path:
    return shard.parent.parent / "mels" / shard.name


def write_mels(shard: Path, logmel: LogMel) -> Path:
    """The shard's log-mels as float16 (frames, 80) arrays next to it in mels/; skipped when present."""
    out = mel_path(shard)
    if out.is_file():
        return out
    mels = []
    for u in read_shard(shard):
        with torch.no_grad():
            m = logmel(torch.from_numpy(u["audio"].astype(np.float32) / 32767))
        assert len(m) == 2 * int(u["durations"].sum()), "audio and durations disagree"
        mels.append(m.numpy().astype(np.float16))
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".npz.tmp")  # two trainers may race here: both win
    with os.fdopen(fd, "wb") as f:
        np.savez(f, mel=np.concatenate(mels), n_frames=np.array([len(m) for m in mels], np.int32))
    os.replace(tmp, out)
    return out


def load_corpus(shards: list[Path]) -> list[dict]:
    """Every utterance with its mel: {text, ids, durations, audio int16, mel float16 (2·frames, 80)}."""
    out = []
    for shard in shards:
        utts = read_shard(shard)
        with np.load(mel_path(shard)) as z:
            mel, n_frames = z["mel"], z["n_frames"]
        f0 = 0
        for u, n in zip(utts, n_frames):
            u["mel"] = mel[f0: f0 + n]
            f0 += n
            out.append(u)
    return out
