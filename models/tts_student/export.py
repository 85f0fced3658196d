"""student.pt: the two trained parts in one small file that carries its own configs.

    {"format": "mediaflow-tts-student", "version": 1, "dtype": "int8",
     "acoustic_config": {...}, "vocoder_config": {...}, "mel_config": {...},
     "acoustic": {name: tensor | {"q": int8, "scale": fp16}}, "vocoder": {...}, "meta": {...}}

int8 keeps each weight matrix as int8 with one fp16 scale per output row (symmetric, per channel);
biases, norms and small tensors stay fp16. Loading dequantises to float32 once, so inference runs
ordinary float kernels: the saving is on disk and download, not in compute.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

FORMAT, VERSION = "mediaflow-tts-student", 1


def pack(state: dict[str, torch.Tensor], dtype: str) -> dict:
    out = {}
    for name, t in state.items():
        t = t.detach().float().cpu()
        if dtype == "int8" and t.dim() >= 2 and t.numel() >= 1024:
            rows = t.reshape(t.shape[0], -1)
            scale = (rows.abs().amax(1) / 127).clamp_min(1e-8)
            q = torch.round(rows / scale[:, None]).clamp(-127, 127).to(torch.int8).reshape(t.shape)
            out[name] = {"q": q, "scale": scale.half()}
        elif dtype == "fp32":
            out[name] = t
        else:
            out[name] = t.half()
    return out


def unpack(packed: dict) -> dict[str, torch.Tensor]:
    out = {}
    for name, v in packed.items():
        if isinstance(v, dict):
            shape = [-1] + [1] * (v["q"].dim() - 1)
            out[name] = v["q"].float() * v["scale"].float().reshape(shape)
        else:
            out[name] = v.float()
    return out


def export(run_dir: Path, path: Path, dtype: str = "int8", meta: dict | None = None) -> Path:
    """Combine {run_dir}/acoustic.pt and vocoder.pt (gta.pt, its fine-tuned version, when there is one)
    into `path`, written atomically."""
    from models.tts_student.data import MelConfig

    if dtype not in ("int8", "fp16", "fp32"):
        raise ValueError(f"export dtype must be int8, fp16 or fp32, not {dtype!r}")
    ac = torch.load(run_dir / "acoustic.pt", map_location="cpu", weights_only=True)
    voc = torch.load(run_dir / "vocoder.pt", map_location="cpu", weights_only=True)
    gta = None
    if (run_dir / "gta.pt").is_file():  # the vocoder fine-tuned on the acoustic model's mels
        gta = torch.load(run_dir / "gta.pt", map_location="cpu", weights_only=True)
    summary = {
        "acoustic_steps": ac["step"], "acoustic_minutes": round(ac["elapsed_s"] / 60, 1),
        "vocoder_steps": voc["step"], "vocoder_minutes": round(voc["elapsed_s"] / 60, 1),
        "gta_steps": gta["step"] if gta else 0, "gta_minutes": round(gta["elapsed_s"] / 60, 1) if gta else 0,
        "acoustic_history": ac["history"], "vocoder_history": voc["history"],
        "gta_history": gta["history"] if gta else [], "data": ac.get("data", {}),
        "exported": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    blob = {
        "format": FORMAT, "version": VERSION, "dtype": dtype,
        "acoustic_config": ac["config"], "vocoder_config": voc["config"], "mel_config": MelConfig().to_dict(),
        "acoustic": pack(ac["model"], dtype), "vocoder": pack((gta or voc)["model"], dtype),
        "meta": {**summary, **(meta or {})},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(blob, tmp)
    tmp.replace(path)
    return path
