"""Train the student on what the teacher said: the acoustic model, the vocoder, then export student.pt.

    python -m models.tts_student.train --preset=cpu --part=acoustic   # one process per part, side by side
    python -m models.tts_student.train --preset=cpu --part=vocoder
    python -m models.tts_student.train --preset=cpu --part=gta        # vocoder on the acoustic model's mels
    python -m models.tts_student.train --preset=cpu --part=export     # → {out_dir}/student.pt
    python -m models.tts_student.train --preset=cuda --part=all --device=cuda

Every hyperparameter is a global below; a preset overrides some, and `--name=value` overrides both.
Each part checkpoints to {out_dir}/{part}.pt every `ckpt_minutes` and resumes from it when rerun, so
an interruption costs minutes. The learning rate follows warmup + cosine over whichever runs out
first, steps or the part's time budget (`*_minutes`): on a busy shared CPU the run still ends with a
decayed rate instead of being cut off mid-schedule.
"""

from __future__ import annotations

import ast
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models.tts_student import export as export_mod
from models.tts_student.data import LogMel, MelConfig, load_corpus
from models.tts_student.model import AcousticModel, StudentConfig
from models.tts_student.vocoder import Vocoder, VocoderConfig

# -- hyperparameters -----------------------------------------------------------------------------
preset = "cpu"
part = "all"  # acoustic | vocoder | gta | export, or several joined by commas; all = the four in order
data_dir = "data/distill"
out_dir = "data/distill/run"
device = "cpu"
threads = 0  # 0: torch's default
seed = 1337
val_fraction = 0.02
log_every = 50
ckpt_minutes = 5.0
# acoustic model
ac_steps = 4000
ac_minutes = 40.0
ac_batch = 16
ac_lr = 1e-3
ac_warmup = 200
ac_dur_weight = 1.0
# vocoder
voc_steps = 4000
voc_minutes = 40.0
voc_batch = 16
voc_segment = 32  # mel frames per training crop (0.4 s)
voc_lr = 1e-3
voc_warmup = 200
voc_mel_weight = 1.0
# vocoder fine-tuning on the acoustic model's own (teacher-forced) mels, so it learns to voice what the
# acoustic model actually makes, over-smoothing included, rather than the teacher's crisper mels
gta_steps = 2000
gta_minutes = 0.0
gta_lr = 3e-4
# network sizes: StudentConfig / VocoderConfig fields, prefixed
model_overrides: dict = {}
vocoder_overrides: dict = {}
export_dtype = "int8"  # int8 | fp16 | fp32
# a student.pt to start from instead of random weights (a warm start: each tensor whose name and shape match;
# a new speaker table starts at zero, so the first voice speaks as the old student did)
init_from = ""

SETTINGS = [k for k, v in list(globals().items()) if not k.startswith("_") and k.islower()
            and isinstance(v, (int, float, str, dict))]

PRESETS = {
    # About 80 minutes on 2 cores, two processes of one thread: the acoustic model for 75 minutes beside
    # the vocoder (55 minutes on the teacher's mels, then 20 on the acoustic model's latest snapshot). The
    # step limits sit above what an idle machine reaches (~180 and ~330 steps a minute), so the minutes
    # govern. The shipped student: this preset cut to 56/37/15 minutes (docs/benchmarks.md).
    # Both full presets train a local decoder (dec_window 16 frames, 0.4 s either side; the shipped student of
    # 2026-11-30 attends to the whole sentence): its first audio needs a prefix of the sentence decoded, not all
    # of it (26 → 8 ms of the decoder's CPU for a 20-word sentence, measured on the shipped graphs).
    "cpu": dict(threads=1, ac_steps=13_500, ac_minutes=75.0, ac_batch=12, ac_lr=2e-3, voc_steps=18_000,
                voc_minutes=55.0, gta_steps=6_600, gta_minutes=20.0, model_overrides=dict(dec_window=16)),
    # A GPU: the same networks, far more steps, bigger batches (untested here: no GPU on this machine).
    "cuda": dict(device="cuda", ac_steps=60_000, ac_minutes=0.0, ac_batch=48, ac_lr=1e-3, ac_warmup=2000,
                 voc_steps=300_000, voc_minutes=0.0, voc_batch=32, voc_segment=64, voc_lr=5e-4, voc_warmup=2000,
                 gta_steps=50_000, gta_minutes=0.0, log_every=200, ckpt_minutes=10.0,
                 model_overrides=dict(dec_window=16)),
    # Seconds, for tests: tiny networks, a few steps.
    "tiny": dict(threads=1, ac_steps=30, ac_minutes=0.0, ac_batch=4, ac_warmup=5, ac_lr=3e-3, voc_steps=10,
                 voc_minutes=0.0, voc_batch=2, voc_segment=16, voc_warmup=2, gta_steps=5, log_every=10,
                 val_fraction=0.2, export_dtype="fp16",
                 model_overrides=dict(d_model=32, n_heads=2, enc_layers=1, dec_layers=1, dur_channels=32),
                 vocoder_overrides=dict(dim=32, intermediate=64, layers=1)),
}


def configure(argv: list[str]) -> dict:
    """Apply the preset named on the command line, then every --name=value; returns the settings."""
    g = globals()
    args = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
    for k, v in PRESETS[args.get("preset", preset)].items():
        g[k] = v
    for k, v in args.items():
        if k not in SETTINGS:
            raise SystemExit(f"unknown setting --{k}")
        g[k] = ast.literal_eval(v) if isinstance(g[k], dict) else type(g[k])(v)
    return {k: g[k] for k in SETTINGS}


def model_config(voices: list[str] = ()) -> StudentConfig:
    """The acoustic model's config; two or more teacher voices in the data give it a speaker vector each."""
    return StudentConfig(**{**model_overrides, "voices": list(voices) if len(voices) > 1 else []})


def vocoder_config() -> VocoderConfig:
    return VocoderConfig(**vocoder_overrides)


# -- data ------------------------------------------------------------------------------------------
def split(utts: list[dict]) -> tuple[list[dict], list[dict]]:
    order = np.random.default_rng(0).permutation(len(utts))
    n_val = max(1, int(len(utts) * val_fraction))
    return [utts[i] for i in order[n_val:]], [utts[i] for i in order[:n_val]]


def acoustic_batches(utts: list[dict], batch: int, rng: random.Random):
    """Endless batches of similar length (less padding): sort a shuffled pool, cut, shuffle the cuts."""
    while True:
        idx = list(range(len(utts)))
        rng.shuffle(idx)
        pool = 50 * batch
        cuts = []
        for p in range(0, len(idx), pool):
            chunk = sorted(idx[p: p + pool], key=lambda i: len(utts[i]["mel"]))
            cuts += [chunk[i: i + batch] for i in range(0, len(chunk), batch)]
        rng.shuffle(cuts)
        for c in cuts:
            yield collate([utts[i] for i in c])


def collate(us: list[dict]) -> dict:
    n = max(len(u["ids"]) for u in us)
    t = max(len(u["mel"]) for u in us)
    ids, dur = torch.zeros(len(us), n, dtype=torch.long), torch.zeros(len(us), n, dtype=torch.long)
    mel = torch.zeros(len(us), t, us[0]["mel"].shape[1])
    for b, u in enumerate(us):
        ids[b, : len(u["ids"])] = torch.from_numpy(u["ids"])
        dur[b, : len(u["ids"])] = torch.from_numpy(u["durations"])
        mel[b, : len(u["mel"])] = torch.from_numpy(u["mel"].astype(np.float32))
    return {"ids": ids, "lengths": torch.tensor([len(u["ids"]) for u in us]), "durations": dur, "mel": mel,
            "speaker": torch.tensor([u.get("speaker", 0) for u in us])}


def vocoder_batch(utts: list[dict], batch: int, segment: int, rng: random.Random, hop: int) -> dict:
    mels, audio = [], []
    for u in rng.choices(utts, k=batch):
        f = rng.randrange(0, max(1, len(u["mel"]) - segment))
        m = u["mel"][f: f + segment].astype(np.float32)
        a = u["audio"][f * hop: (f + segment) * hop].astype(np.float32) / 32767
        if len(m) < segment:  # a clip shorter than the crop: pad with silence
            m = np.pad(m, ((0, segment - len(m)), (0, 0)), constant_values=np.log(MelConfig.floor))
            a = np.pad(a, (0, segment * hop - len(a)))
        mels.append(m)
        audio.append(a)
    return {"mel": torch.from_numpy(np.stack(mels)), "audio": torch.from_numpy(np.stack(audio))}


@torch.no_grad()
def gta_mels(utts: list[dict], ckpt: Path, log=print) -> list[dict]:
    """Copies of `utts` whose mel is the acoustic model's, teacher-forced with the teacher's durations, so
    it lines up frame for frame with the teacher's audio."""
    ck = torch.load(ckpt, map_location=device, weights_only=True)
    model = AcousticModel(StudentConfig(**ck["config"])).to(device).eval()
    model.load_state_dict(ck["model"])
    order = sorted(range(len(utts)), key=lambda i: len(utts[i]["mel"]))
    out = [dict(u) for u in utts]
    for k in range(0, len(order), 16):
        idx = order[k: k + 16]
        b = _to(collate([utts[i] for i in idx]))
        mel, _, _ = model(b["ids"], b["lengths"], b["durations"], b["speaker"])
        for row, i in enumerate(idx):
            out[i]["mel"] = mel[row, : len(utts[i]["mel"])].cpu().numpy().astype(np.float16)
    log(f"gta: {len(out)} mels from {ckpt.name} (step {ck['step']})")
    return out


# -- losses ---------------------------------------------------------------------------------------
def acoustic_loss(model, b: dict) -> tuple[torch.Tensor, dict]:
    mel, mask, log_d = model(b["ids"], b["lengths"], b["durations"], b["speaker"])
    target = b["mel"][:, : mel.shape[1]]
    n = mask.sum() * mel.shape[2]
    mel_l1 = ((mel - target).abs() * mask).sum() / n
    id_mask = (torch.arange(b["ids"].shape[1], device=mel.device)[None] < b["lengths"][:, None]).float()
    dur = (((log_d - torch.log1p(b["durations"].float())) ** 2) * id_mask).sum() / id_mask.sum()
    return mel_l1 + ac_dur_weight * dur, {"mel_l1": mel_l1.item(), "dur": dur.item()}


class SpectralLoss(torch.nn.Module):
    """Multi-resolution STFT (spectral convergence + log-magnitude L1) and log-mel L1."""

    def __init__(self, resolutions=((512, 128), (1024, 256), (2048, 512))):
        super().__init__()
        self.resolutions = resolutions
        self.logmel = LogMel(MelConfig())
        for n_fft, _ in resolutions:
            self.register_buffer(f"win{n_fft}", torch.hann_window(n_fft), persistent=False)

    def forward(self, y_hat, y) -> tuple[torch.Tensor, dict]:
        stft = 0.0
        for n_fft, hop in self.resolutions:
            w = getattr(self, f"win{n_fft}")
            S = torch.stft(y, n_fft, hop, window=w, return_complex=True).abs().clamp_min(1e-7)
            S_hat = torch.stft(y_hat, n_fft, hop, window=w, return_complex=True).abs().clamp_min(1e-7)
            sc = torch.linalg.norm(S - S_hat) / torch.linalg.norm(S).clamp_min(1e-7)
            stft = stft + sc + F.l1_loss(S_hat.log(), S.log())
        stft = stft / len(self.resolutions)
        mel = F.l1_loss(self.logmel(y_hat), self.logmel(y))
        return stft + voc_mel_weight * mel, {"stft": float(stft), "mel_l1": mel.item()}


# -- the loop ---------------------------------------------------------------------------------------
def lr_at(step: int, elapsed: float, steps: int, minutes: float, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    if minutes:
        progress = max(progress, elapsed / (60 * minutes))
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def run(which: str, train: list[dict], val: list[dict], log=print, voices: list[str] = ()) -> Path:
    """Train one part until its steps or minutes run out; resumes from {out_dir}/{which}.pt."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / f"{which}.pt"
    if which == "acoustic":
        cfg, steps, minutes, peak, warmup = model_config(voices), ac_steps, ac_minutes, ac_lr, ac_warmup
        model = AcousticModel(cfg)
        with torch.no_grad():  # start the output at the average frame: the first steps are not wasted on it
            model.to_mel.bias.copy_(torch.from_numpy(np.concatenate([u["mel"] for u in train[:200]]).mean(0)
                                                     .astype(np.float32)).repeat(cfg.frames_per_step))
        if init_from and not ckpt_path.is_file():
            warm_start(model, "acoustic", log)
        batches = acoustic_batches(train, ac_batch, rng)
        loss_fn = lambda b: acoustic_loss(model, b)  # noqa: E731
    else:
        cfg, steps, minutes, peak, warmup = vocoder_config(), voc_steps, voc_minutes, voc_lr, voc_warmup
        model = Vocoder(cfg)
        if which == "vocoder" and init_from and not ckpt_path.is_file():
            warm_start(model, "vocoder", log)
        if which == "gta":  # start from the trained vocoder, on the acoustic model's mels
            steps, minutes, peak, warmup = gta_steps, gta_minutes, gta_lr, 50
            while not (out / "acoustic.pt").is_file():  # side by side with the acoustic run: its first snapshot
                time.sleep(10)
            if not ckpt_path.is_file():
                model.load_state_dict(torch.load(out / "vocoder.pt", map_location="cpu", weights_only=True)["model"])
            train, val = gta_mels(train, out / "acoustic.pt", log), gta_mels(val, out / "acoustic.pt", log)
        spectral = SpectralLoss().to(device)
        batches = iter(lambda: vocoder_batch(train, voc_batch, voc_segment, rng, cfg.hop), None)
        loss_fn = lambda b: spectral(model(b["mel"]), b["audio"])  # noqa: E731
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=peak, betas=(0.9, 0.98), weight_decay=0.01)
    step, elapsed, history = 0, 0.0, []
    if ckpt_path.is_file():
        ck = torch.load(ckpt_path, map_location=device, weights_only=True)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        step, elapsed, history = ck["step"], ck["elapsed_s"], ck["history"]
        rng.seed(seed + step)
        log(f"{which}: resumed at step {step} ({elapsed / 60:.1f} min)")
    seen = {"train_utterances": len(train), "val_utterances": len(val), "voices": list(voices),
            "train_hours": round(sum(len(u["audio"]) for u in train) / MelConfig.sample_rate / 3600, 2)}
    n_params = sum(p.numel() for p in model.parameters())
    log(f"{which}: {n_params / 1e6:.2f} M parameters, {len(train)} train / {len(val)} val utterances")

    def save():
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "elapsed_s": elapsed,
                    "history": history, "config": cfg.to_dict(), "part": which, "data": seen},
                   ckpt_path.with_suffix(".tmp"))
        ckpt_path.with_suffix(".tmp").replace(ckpt_path)

    def evaluate() -> dict:
        model.eval()
        vr = random.Random(0)
        with torch.no_grad():
            if which == "acoustic":
                parts = [acoustic_loss(model, _to(collate(val[i: i + 16])))[1] for i in range(0, len(val), 16)]
            else:
                parts = [loss_fn(_to(vocoder_batch(val, 8, voc_segment, vr, cfg.hop)))[1] for _ in range(4)]
        model.train()
        return {k: round(float(np.mean([p[k] for p in parts])), 4) for k in parts[0]}

    started, last_ckpt, running = time.perf_counter() - elapsed, time.perf_counter(), []
    budget = 60 * minutes if minutes else float("inf")
    model.train()
    while step < steps and elapsed < budget:
        lr = lr_at(step, elapsed, steps, minutes, peak, warmup)
        for g in opt.param_groups:
            g["lr"] = lr
        loss, parts = loss_fn(_to(next(batches)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        elapsed = time.perf_counter() - started
        running.append(parts)
        if step % log_every == 0 or step == steps:
            avg = {k: round(float(np.mean([r[k] for r in running])), 4) for k in running[0]}
            row = {"step": step, "minutes": round(elapsed / 60, 2), "lr": round(lr, 6), "train": avg}
            if step % (log_every * 5) == 0 or step == steps:
                row["val"] = evaluate()
            history.append(row)
            log(f"{which} {row}")
            running = []
        if time.perf_counter() - last_ckpt > 60 * ckpt_minutes:
            save()
            last_ckpt = time.perf_counter()
    if not history or "val" not in history[-1]:
        history.append({"step": step, "minutes": round(elapsed / 60, 2), "val": evaluate()})
        log(f"{which} {history[-1]}")
    save()
    return ckpt_path


def warm_start(model: torch.nn.Module, which: str, log=print) -> None:
    """Copy `init_from`'s weights of this part into `model` wherever a name and shape match."""
    from models.tts_student import read_checkpoint

    state = export_mod.unpack(read_checkpoint(init_from)[which])
    own = model.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(matched, strict=False)
    if getattr(model, "speaker", None) is not None and "speaker.weight" not in matched:
        with torch.no_grad():
            model.speaker.weight.zero_()
    log(f"{which}: warm start from {Path(init_from).name}: {len(matched)} of {len(own)} tensors")


def _to(batch: dict) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


def load_data(log=print) -> tuple[list[dict], list[dict], list[str]]:
    """Train and validation utterances, each with its `speaker` index into the voices returned (in the
    order the shards first name them: shard 0's voice is index 0)."""
    from models.tts_student.data import write_mels

    shards = sorted((Path(data_dir) / "shards").glob("*.npz"))
    if not shards:
        raise SystemExit(f"no teacher shards in {data_dir}/shards: run the synthesis step first")
    logmel = LogMel(MelConfig())
    for s in shards:
        write_mels(s, logmel)
    utts = load_corpus(shards)
    voices = list(dict.fromkeys(u["voice"] for u in utts))
    for u in utts:
        u["speaker"] = voices.index(u["voice"])
    hours = sum(len(u["audio"]) for u in utts) / MelConfig.sample_rate / 3600
    log(f"data: {len(utts)} utterances, {hours:.2f} h of teacher audio from {len(shards)} shards, voices {voices}")
    return (*split(utts), voices)


def main(argv: list[str]) -> None:
    settings = configure(argv)
    if threads:
        torch.set_num_threads(threads)
    log = lambda m: print(m, flush=True)  # noqa: E731
    parts = ["acoustic", "vocoder", "gta", "export"] if part == "all" else part.split(",")
    unknown = set(parts) - {"acoustic", "vocoder", "gta", "export"}
    if unknown:
        raise SystemExit(f"unknown --part {', '.join(sorted(unknown))}")
    training = [p for p in parts if p != "export" and (p != "gta" or gta_steps)]
    if training:
        train, val, voices = load_data(log)
        for which in training:
            run(which, train, val, log, voices)
    if "export" in parts:
        path = export_mod.export(Path(out_dir), Path(out_dir) / "student.pt", export_dtype,
                                 meta={"train_settings": settings, "data_dir": str(data_dir)})
        log(f"exported {path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main(sys.argv[1:])
