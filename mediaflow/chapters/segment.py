"""Topic segmentation: cut a sequence of sentence embeddings where the topic changes.

Optimal partitioning by dynamic programming. A chapter costs the scatter of its sentence
embeddings around their centroid; the best partition into K chapters is found for every K up to
a bound, and K is chosen by how much each further chapter still explains, against a mild prior
on chapter length that grows with the square root of the episode's duration (what creators do:
~1-minute chapters in a 10-minute video, ~3.5-minute chapters in a 2-hour podcast). So the count
follows the content, and the prior only breaks near-ties. Duration bounds keep chapters listenable.
Opening words ("So let's…") and long pauses before a sentence pay towards a chapter starting there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Stored in the chapters' method id (mediaflow.chapters.METHOD): a change here makes the pipeline redo them.
METHOD = "embed-kdp-cues-pauses"


@dataclass
class SegmentOptions:
    length_scale: float = 2.5  # expected chapter length in seconds = length_scale * sqrt(duration)
    penalty: float = 0.4  # price of one more chapter, in expected-chapter-lengths of scatter
    prior_weight: float = 0.1  # pull of the count towards duration / expected length (log-squared)
    cue_weight: float = 0.5  # how much an opening like "So let's..." pays towards a chapter start
    cue_clip: float = 3.0
    min_chapter_s: float = 20.0  # no chapter shorter than this ...
    min_relative: float = 0.3  # ... nor than this share of the expected length
    max_relative: float = 4.0  # no chapter longer than this many expected lengths
    smooth: int = 3  # average each sentence with this many neighbours on each side
    pause_snap_s: float = 1.0  # move a boundary to a neighbouring sentence start after a longer pause
    pause_weight: float = 0.5  # each second of pause beyond pause_floor_s pays this towards a chapter start
    pause_floor_s: float = 1.0  # pauses up to this long are breaths, not transitions
    max_units: int = 2500  # longer transcripts are segmented over groups of sentences


def boundaries(
    emb: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    pauses: np.ndarray,
    context: np.ndarray | None = None,
    opts: SegmentOptions = SegmentOptions(),
    cues: np.ndarray | None = None,
) -> list[int]:
    """Indices of the sentences that start a chapter (always including 0).

    `cues`: per-sentence log-odds that a chapter opens there, from its wording (`cues.cue_scores`).
    `pauses`: seconds of silence before each sentence; a long one pays towards a chapter start there.
    """
    n = len(emb)
    if n < 2:
        return [0]
    group = max(1, -(-n // opts.max_units))  # keep the n x n cost matrix bounded for very long episodes
    if group > 1:
        idx = np.arange(0, n, group)
        emb = np.add.reduceat(emb, idx, axis=0)
        emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-9)
        starts, ends = starts[idx], ends[np.minimum(idx + group, n) - 1]
        cues = None if cues is None else cues[idx]
        pause_ev = np.asarray(pauses)[idx]
    else:
        pause_ev = np.asarray(pauses)
    x = _smooth(emb, opts.smooth)
    # Take out what the whole episode (and its title/description) is about: what is left is
    # what distinguishes one part from another.
    centre = x.mean(0)
    if context is not None:
        centre = 0.5 * centre + 0.5 * context
    x = x - centre
    # Direction, not size, tells topics apart once the shared part is gone.
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)
    m = len(x)
    duration = float(ends[-1] - starts[0])
    expected_s = opts.length_scale * np.sqrt(max(duration, 1.0))
    k_prior = max(1.0, duration / expected_s)
    min_s = max(opts.min_chapter_s, opts.min_relative * expected_s)
    max_s = max(opts.max_relative * expected_s, 2 * min_s)

    scatter = max(float((x * x).sum(1).mean()), 1e-9)
    cost = _cost_matrix(x, starts, ends, min_s, max_s)
    bonus = np.zeros(m + 1)
    if cues is not None and opts.cue_weight:
        bonus[:m] += opts.cue_weight * np.clip(cues, -opts.cue_clip, opts.cue_clip)
    if opts.pause_weight:
        bonus[:m] += opts.pause_weight * np.clip(pause_ev - opts.pause_floor_s, 0.0, opts.cue_clip)
    bonus[0] = 0.0  # the first chapter starts at 0 whatever is said there
    cost = cost - scatter * bonus[:, None]
    k_max = int(min(m, max(2, 3 * k_prior)))
    totals, back = _partitions(cost, k_max)
    ks = np.arange(1, k_max + 1)
    score = (
        totals / scatter
        + opts.penalty * (m / k_prior) * ks
        + opts.prior_weight * m * np.log(ks / k_prior) ** 2
    )
    score[~np.isfinite(totals)] = np.inf
    if not np.isfinite(score).any():
        return [0]
    cuts = _trace(back, int(np.argmin(score)) + 1, m)
    cuts = [c * group for c in cuts]
    return _snap_to_pauses(cuts, pauses, opts.pause_snap_s)


def _cost_matrix(x: np.ndarray, starts, ends, min_s: float, max_s: float) -> np.ndarray:
    """cost[i, j] = scatter of units i..j-1 around their mean; inf where the span breaks the bounds."""
    n = len(x)
    cum = np.vstack([np.zeros((1, x.shape[1])), np.cumsum(x, 0)])
    cum_sq = np.concatenate([[0.0], np.cumsum((x * x).sum(1))])
    gram = cum @ cum.T
    sq = np.diag(gram)
    count = np.arange(n + 1)[None, :] - np.arange(n + 1)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        cost = (cum_sq[None, :] - cum_sq[:, None]) - (sq[None, :] + sq[:, None] - 2 * gram) / count
    t0 = np.concatenate([starts, [ends[-1]]])
    t1 = np.concatenate([[starts[0]], ends])
    length = t1[None, :] - t0[:, None]
    cost[(count <= 0) | (length < min_s) | (length > max_s)] = np.inf
    cost[0, n] = float(((x - x.mean(0)) ** 2).sum())  # one chapter for everything is always allowed
    return cost


def _partitions(cost: np.ndarray, k_max: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Best total cost of splitting all units into k chapters, for k = 1..k_max, with back-pointers."""
    n = cost.shape[0] - 1
    best = np.full(n + 1, np.inf)
    best[0] = 0.0
    totals, back = [], []
    cols = np.arange(n + 1)
    for _ in range(k_max):
        total = best[:, None] + cost
        arg = np.argmin(total, axis=0)
        best = total[arg, cols]
        back.append(arg)
        totals.append(best[n])
    return np.array(totals), back


def _trace(back: list[np.ndarray], k: int, n: int) -> list[int]:
    cuts, j = [], n
    for step in range(k, 0, -1):
        j = int(back[step - 1][j])
        cuts.append(j)
    return sorted(set(cuts) | {0})


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
