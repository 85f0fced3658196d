"""Topic segmentation: cut a sequence of sentence embeddings where the topic changes.

Optimal partitioning by dynamic programming: each chapter costs the scatter of its sentence
embeddings around their centroid, plus a fixed price per chapter (`penalty`). A boundary is
placed only where splitting lowers the scatter by more than that price, so the number of
chapters follows the content. Duration bounds keep chapters listenable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SegmentOptions:
    penalty: float = 6.0  # price of one more chapter, in units of per-sentence scatter
    min_chapter_s: float = 45.0
    min_fraction: float = 0.02  # ... and at least this share of the episode
    max_chapter_s: float = 1200.0
    smooth: int = 1  # average each sentence with this many neighbours on each side
    pause_snap_s: float = 1.0  # move a boundary to a neighbouring sentence start after a longer pause


def boundaries(
    emb: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    pauses: np.ndarray,
    context: np.ndarray | None = None,
    opts: SegmentOptions = SegmentOptions(),
) -> list[int]:
    """Indices of the sentences that start a chapter (always including 0)."""
    n = len(emb)
    if n < 2:
        return [0]
    x = _smooth(emb, opts.smooth)
    # Take out what the whole episode (and its title/description) is about: what is left is
    # what distinguishes one part from another.
    centre = x.mean(0)
    if context is not None:
        centre = 0.5 * centre + 0.5 * context
    x = x - centre
    duration = float(ends[-1] - starts[0])
    min_s = max(opts.min_chapter_s, opts.min_fraction * duration)
    max_s = max(opts.max_chapter_s, 2 * min_s)

    cum = np.vstack([np.zeros((1, x.shape[1])), np.cumsum(x, 0)])
    cum_sq = np.concatenate([[0.0], np.cumsum((x * x).sum(1))])
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    prev = np.zeros(n + 1, dtype=int)
    t0 = np.concatenate([starts, [ends[-1]]])
    for j in range(1, n + 1):
        i = np.arange(j)
        length_s = ends[j - 1] - t0[i]
        ok = (length_s >= min_s) & (length_s <= max_s)
        if j == n:
            ok[0] = True  # one chapter for the whole episode is always allowed
        cnt = (j - i).astype(float)
        diff = cum[j] - cum[i]
        cost = (cum_sq[j] - cum_sq[i]) - (diff * diff).sum(1) / cnt
        total = best[i] + cost + opts.penalty
        total[~ok] = np.inf
        k = int(np.argmin(total))
        best[j], prev[j] = total[k], k
    if not np.isfinite(best[n]):
        return [0]
    cuts, j = [], n
    while j > 0:
        cuts.append(int(prev[j]))
        j = prev[j]
    cuts = sorted(set(cuts))
    return _snap_to_pauses(cuts, pauses, opts.pause_snap_s)


def _smooth(emb: np.ndarray, k: int) -> np.ndarray:
    if k <= 0:
        return emb
    c = np.vstack([np.zeros((1, emb.shape[1])), np.cumsum(emb, 0)])
    n = len(emb)
    lo = np.clip(np.arange(n) - k, 0, n)
    hi = np.clip(np.arange(n) + k + 1, 0, n)
    out = (c[hi] - c[lo]) / (hi - lo)[:, None]
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def _snap_to_pauses(cuts: list[int], pauses: np.ndarray, min_pause: float) -> list[int]:
    """A chapter should start after a breath, not mid-flow: prefer the longest nearby pause."""
    out = [0]
    for c in cuts[1:]:
        cands = [j for j in (c - 1, c, c + 1) if out[-1] < j < len(pauses)]
        best = max(cands, key=lambda j: (pauses[j], j == c)) if cands else c
        out.append(best if pauses[best] >= max(min_pause, 1.5 * pauses[c]) else c)
    return sorted(set(out))
