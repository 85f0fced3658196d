"""The student's vocoder: log-mel → 24 kHz waveform, Vocos-style (ConvNeXt blocks → iSTFT head).

    mel (B, T, 80) ─ conv ─ ConvNeXt × n ─ linear → log-magnitude and phase of T STFT frames ─ iSTFT → (B, T·300)

Every layer runs at the mel frame rate (80 frames/s) and the inverse FFT makes the samples, which is
why this is cheap on a CPU: there is no upsampling stack. The iSTFT uses "same" padding (as Vocos),
so T frames give exactly T·hop samples, matching the teacher's audio length frame for frame.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class VocoderConfig:
    n_mels: int = 80
    dim: int = 192
    intermediate: int = 576
    layers: int = 8
    kernel: int = 7
    n_fft: int = 1200  # 50 ms window, 4 × hop, as Vocos
    hop: int = 300
    sample_rate: int = 24_000

    def to_dict(self) -> dict:
        return asdict(self)


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int, intermediate: int, kernel: int, layer_scale: float):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1, self.pw2 = nn.Linear(dim, intermediate), nn.Linear(intermediate, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x):  # (B, dim, T)
        h = self.norm(self.dwconv(x).transpose(1, 2))
        h = self.pw2(F.gelu(self.pw1(h))) * self.gamma
        return x + h.transpose(1, 2)


class ISTFT(nn.Module):
    """Inverse STFT with "same" padding: frames (B, n_fft/2+1, T) complex → (B, T·hop) samples."""

    def __init__(self, n_fft: int, hop: int):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        B, _, T = spec.shape
        pad = (self.n_fft - self.hop) // 2
        frames = torch.fft.irfft(spec, self.n_fft, dim=1, norm="backward") * self.window[None, :, None]
        size = (T - 1) * self.hop + self.n_fft
        y = F.fold(frames, (1, size), (1, self.n_fft), stride=(1, self.hop))[:, 0, 0, pad: size - pad]
        env = F.fold(self.window.square()[None, :, None].expand(1, -1, T), (1, size), (1, self.n_fft),
                     stride=(1, self.hop))[0, 0, 0, pad: size - pad]
        return y / env.clamp_min(1e-11)


class Vocoder(nn.Module):
    def __init__(self, cfg: VocoderConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Conv1d(cfg.n_mels, cfg.dim, cfg.kernel, padding=cfg.kernel // 2)
        self.norm = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(cfg.dim, cfg.intermediate, cfg.kernel, 1.0 / cfg.layers) for _ in range(cfg.layers))
        self.final_norm = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.head = nn.Linear(cfg.dim, cfg.n_fft + 2)  # log-magnitude and phase for n_fft/2+1 bins
        self.istft = ISTFT(cfg.n_fft, cfg.hop)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel (B, T, n_mels) natural-log amplitude → audio (B, T·hop)."""
        x = self.norm(self.embed(mel.transpose(1, 2)).transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        mag, phase = self.head(self.final_norm(x.transpose(1, 2))).transpose(1, 2).chunk(2, dim=1)
        mag = torch.exp(mag).clamp(max=1e2)  # Vocos: exp, clipped so one wild bin cannot blow up
        spec = torch.polar(mag, phase)
        return self.istft(spec)
