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


# -- ONNX, for serving without PyTorch ---------------------------------------------------------------
ONNX_PARTS = ("encoder", "decoder", "vocoder")


def onnx_paths(checkpoint: Path) -> dict[str, Path]:
    """Where the ONNX graphs of `checkpoint` live: beside it, `student.encoder.onnx` and so on (the
    serving side, `mediaflow.tts.voices.student.onnx_graphs`, looks there)."""
    return {part: checkpoint.with_name(f"{checkpoint.stem}.{part}.onnx") for part in ONNX_PARTS}


def export_onnx(checkpoint: Path, opset: int = 17) -> dict[str, Path]:
    """student.pt → three ONNX graphs beside it (written atomically), the same network without PyTorch:

        encoder   ids (1, N) int64 [, speaker (1,)] → h (1, N, d), log_d (1, N): log(1 + frames) per id
                  (speaker: the voice's index, only in a student of several voices)
        decoder   h (1, T, d), where (1, T, 2)    → mel (1, 2T, n_mels)          (T duration frames)
        vocoder   mel (1, M, n_mels)              → mag, phase (1, n_fft/2 + 1, M)

    Between them the caller rounds the durations, repeats each id's `h` for its frames and computes
    `where` (`model.durations_from_log`, `model.regulate`), and after the vocoder runs the inverse STFT:
    a few lines of numpy each (`mediaflow.tts.student_onnx`). Weights keep the checkpoint's int8 form
    (one scale per output row, `DequantizeLinear`), so the files are as small as student.pt and the
    numbers are the very weights the PyTorch path dequantises.
    """
    import hashlib
    import io
    import json

    import onnx

    from models.tts_student import load_voice

    checkpoint = Path(checkpoint)
    model = load_voice(checkpoint, threads=1)
    acoustic, vocoder = model.acoustic, model.vocoder
    blob = torch.load(checkpoint, map_location="cpu", weights_only=True)
    cfg = acoustic.cfg

    class Part(torch.nn.Module):  # the networks registered, so their weights become the graph's initializers
        def __init__(self):
            super().__init__()
            self.acoustic, self.vocoder = acoustic, vocoder

    class Encoder(Part):
        def forward(self, ids, speaker=None):
            mask = torch.ones_like(ids, dtype=torch.float32)[..., None]
            h = self.acoustic.encode(ids, mask, speaker)
            return h, self.acoustic.duration(h, mask)

    class Decoder(Part):
        def forward(self, h, where):
            return self.acoustic.decode(h, torch.ones_like(where[..., :1]), where)[0]

    class Head(Part):
        def forward(self, mel):
            v = self.vocoder
            x = v.norm(v.embed(mel.transpose(1, 2)).transpose(1, 2)).transpose(1, 2)
            for block in v.blocks:
                x = block(x)
            mag, phase = v.head(v.final_norm(x.transpose(1, 2))).transpose(1, 2).chunk(2, dim=1)
            return torch.exp(mag).clamp(max=1e2), phase

    n, t = 12, 30
    several = acoustic.speaker is not None  # then the encoder takes the voice's index too
    enc_args = (torch.zeros(1, n, dtype=torch.long),) + ((torch.zeros(1, dtype=torch.long),) if several else ())
    graphs = {
        "encoder": (Encoder(), enc_args, ["ids", "speaker"][:len(enc_args)], ["h", "log_d"],
                    {"ids": {1: "N"}, "h": {1: "N"}, "log_d": {1: "N"}}),
        "decoder": (Decoder(), (torch.zeros(1, t, cfg.d_model), torch.rand(1, t, 2)), ["h", "where"], ["mel"],
                    {"h": {1: "T"}, "where": {1: "T"}, "mel": {1: "M"}}),
        "vocoder": (Head(), (torch.zeros(1, 2 * t, cfg.n_mels),), ["mel"], ["mag", "phase"],
                    {"mel": {1: "M"}, "mag": {2: "M"}, "phase": {2: "M"}}),
    }
    meta = {"format": FORMAT, "version": str(VERSION), "sample_rate": str(vocoder.cfg.sample_rate),
            "hop": str(vocoder.cfg.hop), "n_fft": str(vocoder.cfg.n_fft), "frames_per_step": str(cfg.frames_per_step),
            "parameters": str(model.parameters), "checkpoint": checkpoint.name,
            "checkpoint_sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest(),
            "exported": blob.get("meta", {}).get("exported", "")}
    out = onnx_paths(checkpoint)
    for part, (module, args, inputs, outputs, axes) in graphs.items():
        buf = io.BytesIO()
        with torch.no_grad():
            torch.onnx.export(module.eval(), args, buf, input_names=inputs, output_names=outputs, dynamic_axes=axes,
                              opset_version=opset, do_constant_folding=True, dynamo=False)
        graph = onnx.load_from_string(buf.getvalue())
        if blob.get("dtype") == "int8":
            _int8_weights(graph)
        onnx.helper.set_model_props(graph, {**meta, "part": part, "config": json.dumps(
            cfg.to_dict() if part != "vocoder" else vocoder.cfg.to_dict())})
        onnx.checker.check_model(graph)
        tmp = out[part].with_suffix(".tmp")
        tmp.write_bytes(graph.SerializeToString())
        tmp.replace(out[part])
    return out


def _int8_weights(graph) -> None:
    """Store each float initializer that `pack` quantised (≥ 2-D, ≥ 1024 elements) as int8 with one scale per
    row of the axis it was quantised along, behind a `DequantizeLinear`. The exporter may have transposed
    a weight, so the axis is the one whose per-row scales give back the values exactly (the checkpoint's
    int8 values times their scales, each row's largest at ±127)."""
    import numpy as np
    from onnx import helper, numpy_helper

    inits = list(graph.graph.initializer)
    nodes = []
    for init in inits:
        w = numpy_helper.to_array(init)
        if w.dtype != np.float32 or w.ndim < 2 or w.size < 1024:
            continue
        best = None
        for axis in range(w.ndim):
            rows = np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)
            scale = np.maximum(np.abs(rows).max(1) / 127, 1e-8).astype(np.float32)
            q = np.clip(np.round(rows / scale[:, None]), -127, 127)
            err = np.abs(q * scale[:, None] - rows).max()
            if best is None or err < best[0]:
                best = (err, axis, scale, np.moveaxis(q.reshape(np.moveaxis(w, axis, 0).shape), 0, axis))
        err, axis, scale, q = best
        if err > 1e-6 * max(np.abs(w).max(), 1e-8):
            continue  # not a weight the checkpoint quantised: left as it is
        name = init.name
        graph.graph.initializer.remove(init)
        graph.graph.initializer.extend([
            numpy_helper.from_array(q.astype(np.int8), f"{name}:q"),
            numpy_helper.from_array(scale, f"{name}:scale"),
            numpy_helper.from_array(np.zeros_like(scale, dtype=np.int8), f"{name}:zero"),
        ])
        nodes.append(helper.make_node("DequantizeLinear", [f"{name}:q", f"{name}:scale", f"{name}:zero"], [name],
                                      axis=axis, name=f"{name}:dequantize"))
    for i, node in enumerate(nodes):
        graph.graph.node.insert(i, node)


if __name__ == "__main__":  # python -m models.tts_student.export [models/tts_student/student.pt]
    import sys

    target = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).with_name("student.pt"))
    for part, path in export_onnx(target).items():
        print(f"{part}: {path} ({path.stat().st_size / 1e6:.2f} MB)")
