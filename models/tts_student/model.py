"""The student's acoustic model: phoneme ids → 80-band log-mel at 24 kHz, hop 300 (FastSpeech 2 family).

    ids ─ embed ─ encoder (FFT blocks) ─┬─ duration predictor → log(1 + frames)
                                        └─ length regulator (× teacher durations, or predicted ones)
                                             ─ decoder (FFT blocks, 40 frames/s) ─ linear → 2 mel frames per step

A student of several teacher voices (`StudentConfig.voices`, two or more) adds a learned speaker vector
to every encoder output, so the duration predictor and the decoder both hear who is speaking; index 0
is the first voice. A one-voice student has no such vector (and reads the checkpoints made before).

Durations are in the teacher's units: frames of 600 samples (25 ms). The decoder runs at that rate and
emits two 300-sample mel frames per step, so the vocoder sees 80 frames/s while attention and the
feed-forward convolutions pay for only 40. An FFT block is FastSpeech's: self-attention, then a
feed-forward made of two 1-D convolutions, each in a pre-norm residual. The encoder has sinusoidal
positions; the decoder none: each frame is told where it sits inside its phoneme (fraction through,
and the phoneme's length), which does not depend on how long the sentence is. With `dec_window` the
decoder's attention is local, so a sentence's first frames can be decoded from a prefix of it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class StudentConfig:
    n_vocab: int = 178  # Kokoro's phoneme ids are 0..177; 0 is the pad at each end of a chunk
    d_model: int = 128
    n_heads: int = 2
    enc_layers: int = 4
    dec_layers: int = 4
    ff_mult: int = 2  # feed-forward width = ff_mult * d_model
    ff_kernel: int = 3  # the first feed-forward conv sees one position either side
    enc_dropout: float = 0.1  # encoder and duration predictor: a small corpus, and names never seen in it
    dec_dropout: float = 0.0  # the decoder runs per frame, where dropout costs a fifth of a CPU step
    # A decoder frame attends to frames at most this far away (0: to all). Then the first frames of a
    # sentence depend only on the frames up to `decoder_reach()` further on, so the first audio can be
    # decoded and vocoded before the rest of the sentence is.
    dec_window: int = 0
    dur_channels: int = 128
    dur_kernel: int = 3
    n_mels: int = 80
    frames_per_step: int = 2  # mel frames (hop 300) per duration frame (600 samples)
    sample_rate: int = 24_000
    hop: int = 300
    voices: list[str] = field(default_factory=list)  # the teacher voices learned, when two or more

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def n_speakers(self) -> int:
        return max(1, len(self.voices))

    def decoder_reach(self) -> int | None:
        """How many duration frames after a frame can change the decoder's output for it (None: all)."""
        if not self.dec_window:
            return None
        return self.dec_layers * (self.dec_window + self.ff_kernel // 2)


def sinusoids(length: int, dim: int, device=None) -> torch.Tensor:
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim, device=device)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
    return pe


def neighbours(x: torch.Tensor, kernel: int) -> torch.Tensor:
    """(B, T, d) → (B, T, kernel·d): each position with its kernel//2 neighbours either side (zeros past the
    ends). A Linear on this is a 1-D convolution, and a CPU runs it as one matrix product: several times
    faster than oneDNN's convolution at these sizes, and no transposes."""
    if kernel == 1:
        return x
    r = kernel // 2
    p = F.pad(x, (0, 0, r, r))
    return torch.cat([p[:, i: i + x.shape[1]] for i in range(kernel)], dim=-1)


class ConvFeedForward(nn.Module):
    def __init__(self, d: int, hidden: int, kernel: int, dropout: float):
        super().__init__()
        self.kernel = kernel
        self.fc1, self.fc2 = nn.Linear(kernel * d, hidden), nn.Linear(hidden, d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, mask):  # x (B, T, d); mask (B, T, 1), 1 where real
        h = F.gelu(self.fc1(neighbours(x * mask, self.kernel)))
        return self.drop(self.fc2(self.drop(h)))


class FFTBlock(nn.Module):
    def __init__(self, cfg: StudentConfig, dropout: float, window: int = 0):
        super().__init__()
        d = cfg.d_model
        self.n_heads = cfg.n_heads
        self.window = window  # attend to positions at most this far away (0: all)
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.ff = ConvFeedForward(d, cfg.ff_mult * d, cfg.ff_kernel, dropout)
        self.drop = nn.Dropout(dropout)
        self.p = dropout

    def forward(self, x, mask):  # mask (B, T, 1)
        B, T, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        attn_mask = mask[:, None, None, :, 0].bool()  # (B, 1, 1, T): keys that exist
        if self.window:
            pos = torch.arange(T, device=x.device)
            attn_mask = attn_mask & ((pos[None, :] - pos[:, None]).abs() <= self.window)  # (B, 1, T, T)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=self.p if self.training else 0.0)
        x = x + self.drop(self.proj(y.transpose(1, 2).reshape(B, T, d)))
        return (x + self.ff(self.ln2(x), mask)) * mask


class DurationPredictor(nn.Module):
    """Two convolutions over the encoder output → log(1 + frames) per token."""

    def __init__(self, cfg: StudentConfig):
        super().__init__()
        c, self.k = cfg.dur_channels, cfg.dur_kernel
        self.fc1, self.fc2 = nn.Linear(self.k * cfg.d_model, c), nn.Linear(self.k * c, c)
        self.ln1, self.ln2 = nn.LayerNorm(c), nn.LayerNorm(c)
        self.out = nn.Linear(c, 1)
        self.drop = nn.Dropout(cfg.enc_dropout)

    def forward(self, x, mask):
        h = self.drop(self.ln1(F.relu(self.fc1(neighbours(x * mask, self.k)))))
        h = self.drop(self.ln2(F.relu(self.fc2(neighbours(h * mask, self.k)))))
        return self.out(h).squeeze(-1) * mask[..., 0]


def regulate(h: torch.Tensor, durations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Repeat token i of each row durations[b, i] times: (B, N, d), (B, N) → frames (B, T, d), frame mask
    (B, T, 1), and where each frame sits in its token (B, T, 2): position / duration, log(1 + duration)."""
    ends = durations.cumsum(1)  # (B, N)
    total = ends[:, -1]
    T = max(int(total.max()), 1)
    frames = torch.arange(T, device=h.device)[None, :].expand(len(h), T).contiguous()
    index = torch.searchsorted(ends, frames, right=True).clamp(max=h.shape[1] - 1)  # token owning each frame
    out = torch.gather(h, 1, index[..., None].expand(-1, -1, h.shape[2]))
    mask = (frames < total[:, None]).float()[..., None]
    d = torch.gather(durations, 1, index).clamp(min=1).float()
    start = torch.gather(ends, 1, index) - d
    where = torch.stack([(frames - start) / d, torch.log1p(d)], -1)
    return out * mask, mask, where * mask


def durations_from_log(log_d: torch.Tensor, mask: torch.Tensor, speed: float = 1.0) -> torch.Tensor:
    """Predicted log(1 + frames) → whole frames, scaled by 1/speed, rounded on the running sum so
    rounding errors do not pile up over a long sentence; every real token keeps at least one frame."""
    d = (torch.exp(log_d) - 1).clamp(min=0) / speed * mask
    ends = torch.round(d.cumsum(-1))
    d = torch.diff(ends, dim=-1, prepend=torch.zeros_like(ends[..., :1]))
    return torch.maximum(d, mask).long()


class AcousticModel(nn.Module):
    def __init__(self, cfg: StudentConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.n_vocab, cfg.d_model)
        self.encoder = nn.ModuleList(FFTBlock(cfg, cfg.enc_dropout) for _ in range(cfg.enc_layers))
        self.enc_ln = nn.LayerNorm(cfg.d_model)
        self.duration = DurationPredictor(cfg)
        self.decoder = nn.ModuleList(FFTBlock(cfg, cfg.dec_dropout, cfg.dec_window) for _ in range(cfg.dec_layers))
        self.where = nn.Linear(2, cfg.d_model)
        self.dec_ln = nn.LayerNorm(cfg.d_model)
        self.to_mel = nn.Linear(cfg.d_model, cfg.n_mels * cfg.frames_per_step)
        self.scale = math.sqrt(cfg.d_model)
        self.speaker = nn.Embedding(cfg.n_speakers, cfg.d_model) if cfg.n_speakers > 1 else None
        if self.speaker is not None:
            nn.init.normal_(self.speaker.weight, std=0.1)

    def encode(self, ids, id_mask, speaker=None):
        """speaker: (B,) voice indices (None: the first voice); ignored by a one-voice model."""
        x = self.embed(ids) * self.scale + sinusoids(ids.shape[1], self.cfg.d_model, ids.device)
        for block in self.encoder:
            x = block(x, id_mask)
        x = self.enc_ln(x)
        if self.speaker is not None:
            if speaker is None:
                speaker = torch.zeros(ids.shape[0], dtype=torch.long, device=ids.device)
            x = x + self.speaker(speaker)[:, None, :]
        return x * id_mask

    def decode(self, h, frame_mask, where):
        x = h + self.where(where)  # place within the phoneme instead of absolute position: any length works
        for block in self.decoder:
            x = block(x, frame_mask)
        B, T, _ = x.shape
        mel = self.to_mel(self.dec_ln(x)).view(B, T * self.cfg.frames_per_step, self.cfg.n_mels)
        return mel, frame_mask.repeat_interleave(self.cfg.frames_per_step, 1)

    def forward(self, ids, id_lengths, durations, speaker=None):
        """Teacher forcing: ids (B, N), id_lengths (B,), teacher durations (B, N), speaker (B,) or None →
        mel (B, 2T, n_mels), mel mask (B, 2T, 1), predicted log durations (B, N)."""
        id_mask = (torch.arange(ids.shape[1], device=ids.device)[None] < id_lengths[:, None]).float()[..., None]
        h = self.encode(ids, id_mask, speaker)
        log_d = self.duration(h.detach(), id_mask)  # FastSpeech 2: the predictor does not steer the encoder
        mel, mel_mask = self.decode(*regulate(h, durations * id_mask[..., 0].long()))
        return mel, mel_mask, log_d

    @torch.inference_mode()
    def infer_frames(self, ids: torch.Tensor, speed: float = 1.0, speaker: int = 0):
        """One utterance: ids (N,) with pads, in voice `speaker` → the decoder's input (frames (1, T, d),
        frame mask (1, T, 1), where (1, T, 2)) and the durations (N,)."""
        ids = ids[None]
        id_mask = torch.ones(1, ids.shape[1], 1, device=ids.device)
        h = self.encode(ids, id_mask, torch.tensor([speaker], device=ids.device))
        d = durations_from_log(self.duration(h, id_mask), id_mask[..., 0], speed)
        return regulate(h, d), d[0]

    @torch.inference_mode()
    def infer(self, ids: torch.Tensor, speed: float = 1.0, speaker: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """One utterance: ids (N,) with pads, in voice `speaker` → (mel (2T, n_mels), durations (N,))."""
        frames, d = self.infer_frames(ids, speed, speaker)
        mel, _ = self.decode(*frames)
        return mel[0], d
