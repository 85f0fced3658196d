"""What every voice is: `Voice` (the checks, then the engine's `speak`), `VoiceInfo` and `Entry`.

A voice's module subclasses `Voice` and implements the engine's part: `speak(text, speed)` (audio
sentence by sentence, from text and speed already checked), `files()` and `count_parameters()` (what
it loads, measured: the benchmark prints these and the tests tie the listed figures to them).
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from mediaflow.errors import InputTooLarge, InvalidInput
from mediaflow.tts.captions import Captioned, word_times
from mediaflow.tts.frontend import MAX_AUDIO_S, MAX_CHARS, Chunk, check_spoken, check_text

MIN_SPEED, MAX_SPEED = 0.25, 4.0  # OpenAI's range; every engine here speaks across it

# The machine the listed speeds were measured on (`bench/tts.py`); each voice's module gives the date and load.
REFERENCE_MACHINE = "the project's reference machine (2 CPU cores, 24 GiB, no GPU; docs/benchmarks.md)"


def check_speed(speed: float) -> float:
    """The speed as a float, or InvalidInput when it is outside MIN_SPEED..MAX_SPEED."""
    if not MIN_SPEED <= float(speed) <= MAX_SPEED:
        raise InvalidInput(f"speed {speed} is out of range: use {MIN_SPEED} to {MAX_SPEED} (1.0 is normal)")
    return float(speed)


class Voice(ABC):
    """A loaded voice: text → float32 mono audio at `sample_rate`.

    `stream` and `synthesize` check the text (`check_text`: empty, over `max_chars`) and the speed
    (`check_speed`), once, then hand them to `say`. A caller that has checked them already (the API: its
    schema checks the speed, its route the text) calls `say` directly. `say` bounds the output (the
    written-out words and the seconds of audio, `check_spoken`) around the engine's `speak`.
    """

    voice_id: str
    sample_rate: int

    def stream(self, text: str, speed: float = 1.0, max_chars: int = MAX_CHARS,
               max_seconds: float = MAX_AUDIO_S) -> Iterator[np.ndarray]:
        """Audio sentence by sentence; the text is checked and phonemised before the first yield."""
        return self.say(check_text(text, max_chars), check_speed(speed), max_seconds)

    def synthesize(self, text: str, speed: float = 1.0, max_chars: int = MAX_CHARS,
                   max_seconds: float = MAX_AUDIO_S) -> np.ndarray:
        """The whole text's audio in one array."""
        text, speed = check_text(text, max_chars), check_speed(speed)
        check_spoken(text, speed, max_seconds)
        audio = self.speak_whole(text, speed)
        _check_seconds(len(audio), self.sample_rate, max_seconds)
        return audio

    def say(self, text: str, speed: float, max_seconds: float = MAX_AUDIO_S,
            pieces: bool = True) -> Iterator[np.ndarray]:
        """`speak`, bounded: InputTooLarge before anything is made when the text, written out, is over
        `MAX_WORDS` words or would make more than `max_seconds` of audio; raised between sentences if
        the audio passes `max_seconds` all the same (an estimate is an estimate). `pieces=False`: one
        array per sentence (`speak_sentences`), for a caller that keeps the whole file anyway."""
        check_spoken(text, speed, max_seconds)
        made = self.speak(text, speed) if pieces else self.speak_sentences(text, speed)
        return _bounded(made, self.sample_rate, max_seconds)

    def captioned(self, text: str, speed: float = 1.0, max_chars: int = MAX_CHARS,
                  max_seconds: float = MAX_AUDIO_S) -> Captioned:
        """The whole text's audio with each word's start and end (`mediaflow.tts.captions`)."""
        return self.say_captioned(check_text(text, max_chars), check_speed(speed), max_seconds)

    def say_captioned(self, text: str, speed: float, max_seconds: float = MAX_AUDIO_S) -> Captioned:
        """`captioned` for text and speed already checked (the API's route), bounded as `say` is.
        InvalidInput for a voice whose engine gives no durations (`timed` is False)."""
        if not self.timed:
            raise InvalidInput(f"voice {self.voice_id!r} gives no word timings; captions come from the student "
                               f"and the Kokoro voices")
        check_spoken(text, speed, max_seconds)
        parts, words, made = [], [], 0
        for audio, chunk, samples in self.speak_timed(text, speed):
            words += word_times(chunk, samples, self.sample_rate, made / self.sample_rate)
            made += len(audio)
            _check_seconds(made, self.sample_rate, max_seconds)
            parts.append(audio)
        return Captioned(np.concatenate(parts), self.sample_rate, words)

    timed = False  # whether `speak_timed` is implemented: the engine says how long each phoneme lasts

    def speak_timed(self, text: str, speed: float) -> Iterator[tuple[np.ndarray, Chunk, np.ndarray]]:
        """Per model call: its audio, its `Chunk`, and the samples each id of `[0, *chunk.ids, 0]` lasts."""
        raise NotImplementedError

    @abstractmethod
    def speak(self, text: str, speed: float) -> Iterator[np.ndarray]:
        """The engine's audio for checked text and speed, as an iterator made after the whole text is
        phonemised (so "nothing speakable" is raised here, not at the first `next`)."""

    def speak_sentences(self, text: str, speed: float) -> Iterator[np.ndarray]:
        """`speak` with one array per sentence; an engine that streams within a sentence overrides this
        (its early pieces cost extra model calls that nobody listening to a whole file gains from)."""
        return self.speak(text, speed)

    def speak_whole(self, text: str, speed: float) -> np.ndarray:
        """`speak_sentences`, joined; an engine that does better with the whole text at once overrides this."""
        return np.concatenate(list(self.speak_sentences(text, speed)))

    @abstractmethod
    def files(self) -> list[Path]:
        """The files the voice was loaded from (weights, voice pack, checkpoint)."""

    @abstractmethod
    def count_parameters(self) -> int:
        """Parameters, counted in the loaded weights (ONNX initializer elements, or tensor elements)."""


def _bounded(chunks: Iterator[np.ndarray], sample_rate: int, max_seconds: float) -> Iterator[np.ndarray]:
    made = 0
    try:
        for audio in chunks:
            made += len(audio)
            _check_seconds(made, sample_rate, max_seconds)
            yield audio
    finally:
        getattr(chunks, "close", lambda: None)()  # a consumer that stops early stops the engine too


def _check_seconds(samples: int, sample_rate: int, max_seconds: float) -> None:
    if samples > max_seconds * sample_rate:
        raise InputTooLarge(f"the speech passed the limit of {max_seconds:g} s of audio; split the text into parts")


def onnx_parameters(model) -> int:
    """Elements in an ONNX model's initializers: `model` is a path, bytes, or an `onnx.ModelProto`."""
    import onnx

    if isinstance(model, (bytes, bytearray)):
        model = onnx.load_from_string(bytes(model))
    elif not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer)


@dataclass(frozen=True)
class ReferenceSpeed:
    """Speed figures measured once by `bench/tts.py` on the reference machine: what to expect, not a
    live measurement of this installation."""

    rtf: float  # median wall seconds per second of audio, 2 threads
    cpu_rtf: float  # median CPU seconds per second of audio: not inflated by other work on the machine
    first_audio_s: float  # wall time to the first audio of a 20-word sentence
    measured: str  # when, and under what load

    def fields(self) -> dict:
        return {"rtf": self.rtf, "cpu_rtf": self.cpu_rtf, "first_audio_s": self.first_audio_s,
                "speed_measured": f"measured by bench/tts.py on {REFERENCE_MACHINE}, {self.measured}"}


NO_SPEED = {"rtf": None, "cpu_rtf": None, "first_audio_s": None, "speed_measured": None}


@dataclass(frozen=True)
class VoiceInfo:
    """A voice as listed: what it is, what it costs, and whether this installation has it.

    `parameters` and `size_bytes` are the model's (tests count and stat the real files); the speed
    fields are `ReferenceSpeed` figures from the reference machine, named in `speed_measured`.
    """

    id: str
    description: str
    engine: str
    sample_rate: int
    parameters: int | None
    size_bytes: int | None
    license: str
    rtf: float | None
    cpu_rtf: float | None
    first_audio_s: float | None
    speed_measured: str | None
    available: bool
    install: str  # what to do when it is not available

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Entry:
    """A registered voice: its listing (given whether it is available), the check, and the loader."""

    id: str
    info: Callable[[bool], VoiceInfo]
    available: Callable[[], bool]
    load: Callable[[int], Voice]  # threads → the loaded voice


def installed(*modules: str) -> bool:
    """Whether every module can be imported (without importing it)."""
    return all(importlib.util.find_spec(m) is not None for m in modules)
