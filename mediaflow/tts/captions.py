"""Captions: when each written word is said, from the durations a voice predicts for its phonemes.

    captioned = get_voice("student").captioned("Because you liked Deep Time, try Field Notes.")
    captioned.audio, captioned.sample_rate                     # float32 mono, the same audio as `synthesize`
    [(w.word, w.start, w.end) for w in captioned.words]        # ("Because", 0.05, 0.41), ...

The frontend knows which phonemes each word is said in (`Chunk.words`, spans of `Chunk.ids`); a voice
whose engine gives per-phoneme durations (the student's duration predictor, Kokoro's duration tensor)
turns them into seconds here. No alignment after the fact: these are the times the model spoke to.
Words are the normalised text's ("nine thirty" for "9:30"), as the voice read them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from mediaflow.tts.frontend import Chunk


@dataclass(frozen=True)
class WordTime:
    """One spoken word and when it is said, in seconds from the start of the audio."""

    word: str
    start: float
    end: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Captioned:
    """A text's audio with its words' times."""

    audio: np.ndarray = field(repr=False)
    sample_rate: int
    words: list[WordTime]

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.sample_rate


def word_times(chunk: Chunk, samples: np.ndarray, sample_rate: int, offset: float = 0.0) -> list[WordTime]:
    """The words of one model call: `samples` are the audio samples each id of `[0, *chunk.ids, 0]` lasts
    (the pad at each end included: durations × the engine's hop), `offset` the seconds before this call's."""
    if len(samples) != len(chunk.ids) + 2:
        raise ValueError(f"{len(samples)} durations for {len(chunk.ids)} ids and two pads")
    # starts[k]: samples before padded position k; phoneme character i sits at position i + 1
    starts = np.concatenate([[0], np.cumsum(np.asarray(samples, dtype=np.int64))]) / sample_rate + offset
    return [WordTime(word, round(float(starts[a + 1]), 3), round(float(starts[b + 1]), 3))
            for word, a, b in chunk.words]
