"""Speaker diarization benchmark: DER and speakers found, on real and built conversations.

    .venv/bin/python bench/speakers.py [--sets sample,real,tts,room,solo] [--no-speed] [--separability]
                                       [--own-vad] [--dense-pieces N] [--out bench/results/speakers.json]

Sets (each conversation is `tune` or `held-out`; the settings in `mediaflow.diarize` were chosen on
`tune` only):
- `sample`: the two-speaker `sample.wav` + `sample.rttm` inside the `pyannote.audio==3.3.2` wheel (real
  speech, with some overlap). The wheel is fetched once with `pip download --no-deps` into the cache
  dir and the two files are read out of the zip there; nothing of it enters the repository. Held-out.
- `real`: conversations built from real people's recordings: the LibriVox clips of Debian's
  `pocketsphinx-testdata` (one reader, Sense and Sensibility ch. 1), its `cards` clips (one more
  speaker), and the clips in ../shared/eval/speech (Kennedy; the MIT licence read in English and, by
  a voice we count as another speaker, in German; the two channels of `stereo_diarization.wav`; the
  hotword clip). Each speaker's clips are split between tune and held-out conversations.
- `tts`: conversations of the TTS voices `teacher` (Kokoro af_heart), `kokoro-michael`, `kokoro-emma`,
  `piper-joe` and `hibari`, speaking the sentences of bench/tts_sentences.txt (first half: tune,
  second half: held-out). hibari is a student of af_heart and sounds like it (GE2E put their
  voiceprints at cosine 0.99), so the two never meet in one conversation. One conversation per split is "latched":
  the next voice starts within 0.1 s, so no pause marks the change.
- `room`: every `real` and `tts` conversation again, as if recorded in one room: the whole mix (not
  each voice apart) through one reverberation (RT60 0.2-0.5 s, direct-to-reverberant 5-15 dB), one
  band-pass (60-150 Hz to 5-7.5 kHz) and one noise floor (white + low rumble, SNR 20-40 dB), drawn per
  conversation with a fixed seed. The built clips come from different recordings, so their voices
  also differ by channel; a shared channel takes that help away, as in a real studio. Never tuned on:
  a check that the settings hold when the voices share a room.

A built conversation places each clip once, in turn order, with 0.15-0.8 s pauses (some under the
VAD's 0.3 s, so a change can fall inside one speech region), each speaker at its own level (±6 dB),
over -60 dBFS white noise. Its reference turns run from each clip's first to its last sound (energy
within 35 dB of the clip's peak), so pauses inside a clip count as that speaker's speech.

DER: NIST-style, on a 10 ms grid, with a 0.25 s collar (no scoring within 0.25 s of a reference
boundary), overlapping reference speech scored, and the best one-to-one mapping of labels
(Hungarian). The one-speaker baseline gives every turn of our own output the same label, so it
has the same speech detection and shows what the clustering adds.

Separability (`--separability`): per conversation, on the pieces the method embeds (and 3 s ones for
comparison), how alike the true speakers are to the encoder: the lowest mean cosine between two
pieces of one speaker, the highest mean cosine across two speakers, and the highest cosine between
two speakers' centroids. It shows whether a count is possible at all before any criterion is tuned.

As in the pipeline, each conversation is diarized with the speech probabilities its transcription
kept (`mediaflow.vad`; the bench transcribes it first); `--own-vad` runs the speaker step's own VAD
pass instead, as a backfill of old episodes does. `--dense-pieces 0` reads every other piece from the
start (the built conversations are shorter than the method's `dense_pieces`, so by default they are
read whole): the check that sparse reading keeps counts and turns.

Speed and memory (`--no-speed` skips them): every built conversation placed end to end and repeated
to 60 minutes, written as 16 kHz WAV, transcribed in a fresh subprocess to keep its speech
probabilities (that transcription's CPU is the yardstick: both figures move with the host), and diarized
from the file in a fresh subprocess with the models loaded first, once with the kept probabilities
and once with its own VAD pass: CPU seconds of the process and its ffmpeg child per hour of audio,
the share of pieces embedded, wall time, RSS once loaded and its peak while diarizing (sampled every
20 ms); the same for 5 minutes, to show that memory does not grow with length. Results go to bench/results/speakers.json with the
machine and load; built audio and the wheel are cached in ~/.cache/mediaflow/bench-speakers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mediaflow.audio import SAMPLE_RATE, decode, encode  # noqa: E402

CACHE = Path(os.environ.get("MEDIAFLOW_BENCH_CACHE", Path.home() / ".cache" / "mediaflow" / "bench-speakers"))
RESULTS = ROOT / "bench" / "results"
SENTENCES = ROOT / "bench" / "tts_sentences.txt"
POCKETSPHINX = Path("/usr/share/pocketsphinx/test/data")
SHARED = ROOT.parent / "shared" / "eval" / "speech"
PYANNOTE_WHEEL = "pyannote.audio==3.3.2"
COLLAR = 0.25

Turns = list[tuple[float, float, str]]


# -- DER -------------------------------------------------------------------------------------------


def der(reference: Turns, hypothesis: Turns, collar: float = COLLAR, step: float = 0.01) -> dict:
    """Diarization error rate of `hypothesis` against `reference` (both (start, end, label) lists;
    the reference may overlap). Frames of `step` s within `collar` s of a reference turn's start or
    end are not scored. Labels are mapped one to one, maximising the time they agree. Returns
    der, miss, false_alarm, confusion (each a share of the scored reference speech) and speech_s."""
    from scipy.optimize import linear_sum_assignment

    end = max([e for _, e, _ in reference + hypothesis], default=0.0)
    n = int(np.ceil(end / step)) + 1
    ref_labels = sorted({s for _, _, s in reference})
    hyp_labels = sorted({s for _, _, s in hypothesis})
    R = np.zeros((len(ref_labels), n), bool)
    H = np.zeros((len(hyp_labels), n), bool)
    for rows, labels, turns in ((R, ref_labels, reference), (H, hyp_labels, hypothesis)):
        for s, e, lab in turns:
            rows[labels.index(lab), int(round(s / step)):int(round(e / step))] = True
    scored = np.ones(n, bool)
    c = int(round(collar / step))
    for s, e, _ in reference:
        for t in (s, e):
            i = int(round(t / step))
            scored[max(0, i - c):i + c] = False
    R, H = R[:, scored], H[:, scored]
    agree = R.astype(np.int64) @ H.T.astype(np.int64)  # ref × hyp frames in common
    mapped = np.zeros_like(agree, dtype=bool)
    if agree.size:
        ri, hi = linear_sum_assignment(-agree)
        mapped[ri, hi] = True
    n_ref, n_hyp = R.sum(0), H.sum(0)
    correct = np.zeros(R.shape[1], np.int64)
    for ri, hi in zip(*np.nonzero(mapped)):
        correct += R[ri] & H[hi]
    total = int(n_ref.sum())
    miss = int(np.maximum(n_ref - n_hyp, 0).sum())
    fa = int(np.maximum(n_hyp - n_ref, 0).sum())
    conf = int((np.minimum(n_ref, n_hyp) - correct).sum())
    share = (lambda v: v / total) if total else (lambda v: float(v > 0))
    return {"der": share(miss + fa + conf), "miss": share(miss), "false_alarm": share(fa),
            "confusion": share(conf), "speech_s": total * step}


def read_rttm(text: str) -> Turns:
    out = []
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 8 and f[0] == "SPEAKER":
            out.append((float(f[3]), float(f[3]) + float(f[4]), f[7]))
    return out


# -- the sets --------------------------------------------------------------------------------------


@dataclass
class Conversation:
    name: str
    set: str  # sample | real | tts
    split: str  # tune | held-out
    audio: np.ndarray  # 16 kHz mono float32
    reference: Turns
    note: str = ""

    @property
    def speakers(self) -> int:
        return len({s for _, _, s in self.reference})

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLE_RATE


def pyannote_sample() -> Conversation:
    folder = CACHE / "pyannote-wheel"
    wheels = sorted(folder.glob("pyannote_audio-3.3.2-*.whl"))
    if not wheels:
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", PYANNOTE_WHEEL,
                        "-d", str(folder)], check=True)
        wheels = sorted(folder.glob("pyannote_audio-3.3.2-*.whl"))
    with zipfile.ZipFile(wheels[0]) as z:
        wav = z.read("pyannote/audio/sample/sample.wav")
        rttm = z.read("pyannote/audio/sample/sample.rttm").decode()
    wav_path = CACHE / "pyannote-sample.wav"
    wav_path.write_bytes(wav)
    return Conversation("pyannote sample.wav", "sample", "held-out", decode(wav_path), read_rttm(rttm),
                        "30 s, 2 speakers, overlap included")


def _trim(x: np.ndarray, below_db: float = 35.0) -> tuple[int, int]:
    """First and last sample of sound: 20 ms frames within `below_db` of the clip's loudest."""
    hop = SAMPLE_RATE // 50
    frames = x[: len(x) // hop * hop].reshape(-1, hop)
    db = 10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(db > db.max() - below_db)
    if not len(loud):
        return 0, len(x)
    return int(loud[0] * hop), int(min(len(x), (loud[-1] + 1) * hop))


def _chunks(x: np.ndarray, target_s: float) -> list[np.ndarray]:
    """Cut a recording into pieces of about `target_s` at its quietest 100 ms near each cut."""
    hop = SAMPLE_RATE // 100
    e = np.convolve(np.square(x[: len(x) // hop * hop].reshape(-1, hop)).mean(1), np.ones(10) / 10, "same")
    cuts, at = [0], 0
    while (len(x) - at) / SAMPLE_RATE > 1.6 * target_s:
        lo, hi = int((at / SAMPLE_RATE + 0.7 * target_s) * 100), int((at / SAMPLE_RATE + 1.3 * target_s) * 100)
        at = (lo + int(np.argmin(e[lo:hi]))) * hop
        cuts.append(at)
    cuts.append(len(x))
    return [x[a:b] for a, b in zip(cuts[:-1], cuts[1:])]


def build(name: str, set_: str, split: str, turns: list[tuple[str, np.ndarray]], seed: int,
          note: str = "", pauses: tuple[float, float] = (0.15, 0.8)) -> Conversation:
    """Place (speaker, clip) turns one after another with pauses drawn from `pauses` (seconds); the
    reference from each clip's trimmed span."""
    rng = np.random.default_rng(seed)
    gain = {s: 10 ** (rng.uniform(-6, 6) / 20) for s in dict.fromkeys(s for s, _ in turns)}
    parts, ref, t = [], [], 0
    for i, (spk, clip) in enumerate(turns):
        a, b = _trim(clip)
        clip = clip[a:b] * gain[spk] / max(1e-6, float(np.max(np.abs(clip[a:b])))) * 0.5
        pause = int((0.5 if i == 0 else rng.uniform(*pauses)) * SAMPLE_RATE)
        parts += [np.zeros(pause, np.float32), clip.astype(np.float32)]
        t += pause
        ref.append((t / SAMPLE_RATE, (t + len(clip)) / SAMPLE_RATE, spk))
        t += len(clip)
    parts.append(np.zeros(SAMPLE_RATE // 2, np.float32))
    audio = np.concatenate(parts)
    audio = (audio + rng.normal(0, 10 ** (-60 / 20), len(audio))).astype(np.float32)
    return Conversation(name, set_, split, audio, ref, note)


def in_room(conv: Conversation, seed: int, set_: str = "room") -> Conversation:
    """The conversation as if recorded in one room: one reverberation, one band-pass and one noise
    floor for the whole mix (see the `room` set)."""
    from scipy.signal import butter, fftconvolve, sosfilt

    rng = np.random.default_rng(seed)
    x = conv.audio.astype(np.float64)
    rt60 = rng.uniform(0.2, 0.5)
    t = np.arange(int(rt60 * SAMPLE_RATE)) / SAMPLE_RATE
    tail = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    tail[: int(0.002 * SAMPLE_RATE)] = 0
    tail *= np.sqrt(10 ** (-rng.uniform(5, 15) / 10) / np.sum(tail ** 2))  # direct-to-reverberant ratio
    tail[0] = 1.0
    y = fftconvolve(x, tail)[: len(x)]
    band = butter(2, [rng.uniform(60, 150), rng.uniform(5000, 7500)], btype="band", fs=SAMPLE_RATE, output="sos")
    y = sosfilt(band, y)
    y *= np.sqrt(np.mean(x ** 2) / max(np.mean(y ** 2), 1e-12))
    rumble = sosfilt(butter(1, 500, fs=SAMPLE_RATE, output="sos"), rng.standard_normal(len(y)))
    noise = 0.3 * rng.standard_normal(len(y)) + rumble
    noise *= np.sqrt(np.mean(y ** 2) / np.mean(noise ** 2)) / 10 ** (rng.uniform(20, 40) / 20)
    y = (y + noise) / max(1.0, float(np.max(np.abs(y + noise))))
    return Conversation(f"{conv.name} (room)", set_, conv.split, y.astype(np.float32), conv.reference,
                        f"{conv.note}, one room" if conv.note else "one room")


def _alternate(groups: dict[str, list[np.ndarray]]) -> list[tuple[str, np.ndarray]]:
    """Turns taking speakers in rotation until every clip is used."""
    queues = {s: list(c) for s, c in groups.items()}
    out = []
    while any(queues.values()):
        for s, q in queues.items():
            if q:
                out.append((s, q.pop(0)))
    return out


@lru_cache(maxsize=1)
def _real_clips() -> tuple[dict, dict, list, list]:
    """The real recordings both real sets draw on, decoded once: the LibriVox clips and the `cards` clips by
    name, and the licence read in English and in German, each cut into ~5 s chunks."""
    libri = {p.stem[-4:]: decode(p) for p in sorted((POCKETSPHINX / "librivox").glob("*.wav"))}
    cards = {p.stem: decode(p) for p in sorted((POCKETSPHINX / "cards").glob("*.wav"))}
    ml = decode(SHARED / "multilingual.mp3")
    en, de = _chunks(ml[: int(29.3 * SAMPLE_RATE)], 5.0), _chunks(ml[int(29.3 * SAMPLE_RATE):], 5.0)
    return libri, cards, en, de


def real_conversations() -> list[Conversation]:
    if not POCKETSPHINX.is_dir():
        print(f"real: {POCKETSPHINX} missing (apt-get install pocketsphinx-testdata); skipped", file=sys.stderr)
        return []
    if not SHARED.is_dir():
        print(f"real: {SHARED} missing; skipped", file=sys.stderr)
        return []
    libri, cards, en, de = _real_clips()
    jfk = _chunks(decode(SHARED / "jfk.flac"), 5.0)
    hot = decode(SHARED / "hotwords.mp3")
    left, right = (decode_channel(SHARED / "stereo_diarization.wav", c) for c in (0, 1))
    L, C = libri, cards
    note = "real people"
    return [
        build("libri + licence-en", "real", "tune",
              _alternate({"libri": [L["0870"], L["0890"], L["0930"]], "licence-en": en[:3]}), 1, note),
        build("cards + kennedy", "real", "tune",
              _alternate({"cards": [C["001"], C["003"], C["005"]], "kennedy": jfk}), 2, note),
        build("libri + cards + kennedy", "real", "tune",
              _alternate({"libri": [L["0870"], L["0930"]], "cards": [C["001"], C["005"]], "kennedy": jfk}), 3, note),
        build("libri + licence-de", "real", "held-out",
              _alternate({"libri": [L["0880"], L["0920"]], "licence-de": de[:3]}), 4, note),
        build("cards + stereo-left + stereo-right", "real", "held-out",
              _alternate({"cards": [C["002"], C["004"]], "stereo-left": [left], "stereo-right": [right]}), 5, note),
        build("hotword + libri + licence-de", "real", "held-out",
              _alternate({"hotword": [hot], "libri": [L["0880"], L["0920"]], "licence-de": de[3:]}), 6, note),
    ]


def real_solos() -> list[Conversation]:
    """One person talking, from the same recordings as `real_conversations` (each split its own clips):
    the count must stay one."""
    if not POCKETSPHINX.is_dir() or not SHARED.is_dir():
        return []
    libri, cards, en, de = _real_clips()
    note = "one real person"
    return [
        build("libri alone", "solo", "tune", [("libri", libri[k]) for k in ("0870", "0890", "0930")], 11, note),
        build("licence-en alone", "solo", "tune", [("licence", c) for c in en], 12, note),
        build("cards alone", "solo", "tune", [("cards", cards[k]) for k in ("001", "003", "005")], 13, note),
        build("libri alone", "solo", "held-out", [("libri", libri[k]) for k in ("0880", "0920")], 14, note),
        # not the two halves together: whether one person reads both is not stated, and the encoder hears
        # them about as far apart as two people (so each half is its own speaker in the conversations too)
        build("licence-de alone", "solo", "held-out", [("licence", c) for c in de], 15, note),
        build("cards alone", "solo", "held-out", [("cards", cards[k]) for k in ("002", "004")], 16, note),
    ]


SOLO_PLAN = [("kokoro-michael", "tune"), ("piper-joe", "tune"), ("kokoro-emma", "held-out"),
             ("hibari", "held-out"), ("teacher", "held-out")]


def tts_solos(sentences: int = 8) -> list[Conversation]:
    """One TTS voice reading `sentences` of its split's half of the sentences (from the end, so
    mostly not the sentences of the conversations)."""
    sents = _sentences()
    half = len(sents) // 2
    pools = {"tune": sents[:half], "held-out": sents[half:]}
    out = []
    for n, (voice, split) in enumerate(SOLO_PLAN):
        texts = pools[split][-(n + 1) * sentences:][:sentences]
        out.append(build(f"{voice} alone", "solo", split, [(voice, _speak(voice, t)) for t in texts], 200 + n,
                         "one TTS voice"))
    return out


def decode_channel(path: Path, channel: int) -> np.ndarray:
    out = subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(path), "-af",
                          f"pan=mono|c0=c{channel}", "-ar", str(SAMPLE_RATE), "-f", "f32le", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(out, np.float32).copy()


def _sentences() -> list[str]:
    lines = [ln.strip() for ln in SENTENCES.read_text(encoding="utf-8").splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


BACKCHANNELS = ["Right.", "Exactly, yes.", "Mm, interesting.", "Sure."]

LATCHED = (0.0, 0.1)  # the next voice starts within 0.1 s: no pause the VAD could cut at

# (name, split, voices, pauses): turns rotate over the voices
TTS_PLAN = [
    ("michael + emma", "tune", ["kokoro-michael", "kokoro-emma"], (0.15, 0.8)),
    ("joe + teacher", "tune", ["piper-joe", "teacher"], (0.15, 0.8)),
    ("michael + emma + joe", "tune", ["kokoro-michael", "kokoro-emma", "piper-joe"], (0.15, 0.8)),
    ("joe + hibari, latched", "tune", ["piper-joe", "hibari"], LATCHED),
    ("hibari + michael", "held-out", ["hibari", "kokoro-michael"], (0.15, 0.8)),
    ("emma + joe", "held-out", ["kokoro-emma", "piper-joe"], (0.15, 0.8)),
    ("hibari + emma + joe", "held-out", ["hibari", "kokoro-emma", "piper-joe"], (0.15, 0.8)),
    ("joe + emma, latched", "held-out", ["piper-joe", "kokoro-emma"], LATCHED),
]


def _speak(voice_id: str, text: str) -> np.ndarray:
    """A voice's audio of `text` at 16 kHz, cached on disk."""
    import hashlib

    key = hashlib.sha256(f"{voice_id}\n{text}".encode()).hexdigest()[:20]
    path = CACHE / "tts" / f"{voice_id}-{key}.npy"
    if path.exists():
        return np.load(path)
    from math import gcd

    from scipy.signal import resample_poly

    from mediaflow.tts.voices import get_voice

    v = get_voice(voice_id, threads=2)
    g = gcd(v.sample_rate, SAMPLE_RATE)
    audio = resample_poly(v.synthesize(text), SAMPLE_RATE // g, v.sample_rate // g).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, audio)
    return audio


def tts_conversations(turns_per_voice: int = 5) -> list[Conversation]:
    sents = _sentences()
    half = len(sents) // 2
    out = []
    for n, (name, split, voices, pauses) in enumerate(TTS_PLAN):
        if n == 0 or split != TTS_PLAN[n - 1][1] or pauses == LATCHED:  # a latched one starts its half again
            pools = {"tune": iter(sents[:half]), "held-out": iter(sents[half:])}
        turns = []
        for i in range(turns_per_voice * len(voices)):
            voice = voices[i % len(voices)]
            text = BACKCHANNELS[n % len(BACKCHANNELS)] if i == len(voices) + 1 else next(pools[split])
            if i % 3 == 2:  # every third turn two sentences
                text += " " + next(pools[split])
            turns.append((voice, _speak(voice, text)))
        out.append(build(name, "tts", split, turns, 100 + n, "TTS voices", pauses))
    return out


# -- running ---------------------------------------------------------------------------------------


def kept_speech(source) -> np.ndarray:
    """The speech probabilities the transcription step keeps for the speaker step (as in the pipeline),
    of an array or a file."""
    from mediaflow.config import Settings
    from mediaflow.resources import get_transcriber
    from mediaflow.vad import SpeechTrack

    track = SpeechTrack()
    get_transcriber(Settings()).transcribe(source, speech=track)
    return track.array()


def score(conv: Conversation, num_speakers: int | None = None, own_vad: bool = False, options=None) -> dict:
    from mediaflow.diarize import diarize

    speech = None if own_vad else kept_speech(conv.audio)
    t = time.process_time()
    d = diarize(conv.audio, num_speakers=num_speakers, speech=speech, options=options)
    cpu = time.process_time() - t
    hyp = [(t.start, t.end, t.speaker) for t in d.turns]
    one = [(s, e, "one") for s, e, _ in hyp]
    m, base = der(conv.reference, hyp), der(conv.reference, one)
    name = conv.name + (f" ({num_speakers} speakers given)" if num_speakers else "")
    return {"name": name, "set": conv.set, "split": conv.split, "seconds": round(conv.seconds, 1),
            "speakers": conv.speakers, "found": len(d.speakers), "der": round(m["der"], 4),
            "miss": round(m["miss"], 4), "false_alarm": round(m["false_alarm"], 4),
            "confusion": round(m["confusion"], 4), "one_speaker_der": round(base["der"], 4),
            "cpu_s": round(cpu, 2), "note": conv.note, "count_given": num_speakers is not None}


def _usage() -> tuple:
    return resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)


def _cpu_since(before: tuple) -> float:
    """CPU seconds of this process and its children (ffmpeg) since `_usage()` gave `before`."""
    return sum(b.ru_utime + b.ru_stime - a.ru_utime - a.ru_stime for a, b in zip(before, _usage()))


def _speed_child(path: str, every_piece: bool = False) -> None:
    """Run in a subprocess: load the models, diarize a file; print CPU (self + children), wall time
    and RSS (sampled every 20 ms: ru_maxrss would keep the parent's size from before the exec) as JSON."""
    import threading

    import psutil

    me, peak, done = psutil.Process(), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], me.memory_info().rss)
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    from mediaflow import diarize as D
    from mediaflow import vad
    from mediaflow.diarize import _encoder, diarize

    calls = {"embed": 0, "put_aside": 0, "audio": 0}

    def counted(name, f):
        def run(*a):
            calls[name] += 1
            return f(*a)
        return run

    D._embed = counted("embed", D._embed)
    D._Pieces.put_aside = counted("put_aside", D._Pieces.put_aside)
    D._Pieces.audio = counted("audio", D._Pieces.audio)
    _encoder(), vad.model()  # loading is not per hour
    speech = np.load(path + ".speech.npy").astype(np.float32) if Path(path + ".speech.npy").exists() else None
    load_peak, loaded, peak[0] = peak[0], me.memory_info().rss, 0
    before, w0 = _usage(), time.time()
    d = diarize(path, speech=speech, options=D.DiarizeOptions(sparse=not every_piece))
    cpu = _cpu_since(before)
    done.set()
    sampler.join()
    print(json.dumps({"cpu_s": cpu, "wall_s": time.time() - w0, "peak_rss_mb": peak[0] / 2**20,
                      "loaded_rss_mb": loaded / 2**20, "load_peak_rss_mb": load_peak / 2**20,
                      "speakers": len(d.speakers), "turns": len(d.turns), "seconds": d.duration_s,
                      "embedded_share": round(calls["embed"] / max(1, calls["embed"] - calls["audio"] + calls["put_aside"]), 3)}))


def _asr_child(path: str) -> None:
    """Run in a subprocess: transcribe a file as the pipeline does (models loaded first), store its
    speech probabilities beside it as the pipeline does, print the transcription's CPU seconds as JSON.
    The diarization figures are read against it: both move with the host."""
    from mediaflow import vad

    kept_speech(np.zeros(SAMPLE_RATE, np.float32))  # loads Whisper and the VAD
    before = _usage()
    speech = kept_speech(path)
    cpu = _cpu_since(before)
    vad.save(path + ".speech.npy", speech)
    print(json.dumps({"cpu_s": cpu}))


def speed(convs: list[Conversation]) -> list[dict]:
    joined = np.concatenate([c.audio for c in convs])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in (5, 60):
            n = int(minutes * 60 * SAMPLE_RATE)
            audio = np.tile(joined, -(-n // len(joined)))[:n]
            path = Path(tmp) / f"{minutes}min.wav"
            path.write_bytes(encode(audio, SAMPLE_RATE, "wav"))
            del audio
            kept = Path(str(path) + ".speech.npy")
            out = subprocess.run([sys.executable, __file__, "--asr-child", str(path)],
                                 capture_output=True, text=True, check=True).stdout
            asr_cpu_h = json.loads(out.strip().splitlines()[-1])["cpu_s"] / (n / SAMPLE_RATE) * 3600
            stored = kept.read_bytes()
            # the pipeline's path; a backfill's (no kept probabilities); and, for reference in the same
            # run, the previous method's (own VAD pass, every piece embedded: xvector-ahc-v4)
            for vad, every in (("kept", False), ("own", False), ("own", True)):
                if vad == "kept":
                    kept.write_bytes(stored)
                else:
                    kept.unlink(missing_ok=True)
                out = subprocess.run([sys.executable, __file__, "--speed-child", str(path)]
                                     + (["--every-piece"] if every else []),
                                     capture_output=True, text=True, check=True).stdout
                r = json.loads(out.strip().splitlines()[-1])
                rows.append({"minutes": minutes, "vad": vad, "every_piece": every,
                             "cpu_s_per_hour": round(r["cpu_s"] / r["seconds"] * 3600, 1),
                             "asr_cpu_s_per_hour": round(asr_cpu_h, 1),
                             "share_of_asr": round(r["cpu_s"] / r["seconds"] * 3600 / asr_cpu_h, 3),
                             "wall_s_per_hour": round(r["wall_s"] / r["seconds"] * 3600, 1),
                             "peak_rss_mb": round(r["peak_rss_mb"]), "loaded_rss_mb": round(r["loaded_rss_mb"]),
                             "load_peak_rss_mb": round(r["load_peak_rss_mb"]), "speakers": r["speakers"],
                             "embedded_share": r["embedded_share"]})
    return rows


def separability(conv: Conversation, piece_s: float = 1.0) -> dict:
    """How far apart the true speakers are in the encoder's space, on pieces of `piece_s` (those of
    at least 0.5 s, each given the reference speaker it overlaps most): per speaker the mean cosine of
    two of its pieces (within), per pair the mean cosine across them (cross) and of their centroids.
    A count by threshold can only part two voices whose centroid cosine is under `SAME_SPEAKER`
    while every voice's own centroid stays together, so what matters is the margin between them."""
    from mediaflow.diarize import DiarizeOptions, embed_pieces

    starts, ends, x = embed_pieces(conv.audio, DiarizeOptions(piece_s=piece_s))
    labels = []
    for s, e in zip(starts, ends):
        over: dict[str, float] = {}
        for a, b, who in conv.reference:
            if min(e, b) > max(s, a):
                over[who] = over.get(who, 0.0) + min(e, b) - max(s, a)
        labels.append(max(over, key=over.__getitem__) if over else "")
    labels, dur = np.array(labels), ends - starts
    keep = (dur >= 0.5) & (labels != "")
    who = sorted(set(labels[keep]))
    sim = x @ x.T
    idx = {w: np.flatnonzero(keep & (labels == w)) for w in who}
    within = {w: float((sim[np.ix_(i, i)].sum() - len(i)) / (len(i) * (len(i) - 1))) for w, i in idx.items()
              if len(i) > 1}  # a speaker with one piece has no pair
    centroid = {w: x[i].sum(0) / np.linalg.norm(x[i].sum(0)) for w, i in idx.items()}
    pairs = [(a, b) for n, a in enumerate(who) for b in who[n + 1:]]
    cross = [float(sim[np.ix_(idx[a], idx[b])].mean()) for a, b in pairs]
    cent = [float(centroid[a] @ centroid[b]) for a, b in pairs]
    return {"name": conv.name, "set": conv.set, "split": conv.split, "piece_s": piece_s,
            "within_min": round(min(within.values()), 3) if within else None,
            "cross_max": round(max(cross, default=0.0), 3), "centroid_cos_max": round(max(cent, default=0.0), 3)}


def table(rows: list[dict]) -> str:
    head = "| set | split | conversation | s | speakers | found | DER | miss | FA | conf. | one-speaker DER |"
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        lines.append(f"| {r['set']} | {r['split']} | {r['name']} | {r['seconds']:.0f} | {r['speakers']} | "
                     f"{r['found']} | {r['der']:.1%} | {r['miss']:.1%} | {r['false_alarm']:.1%} | "
                     f"{r['confusion']:.1%} | {r['one_speaker_der']:.1%} |")
    return "\n".join(lines)


def summary(rows: list[dict]) -> list[dict]:
    """Per set and split, the conversations with the count found (the rows with it given are apart)."""
    out = []
    rows = [r for r in rows if not r["count_given"]]
    for key in sorted({(r["set"], r["split"]) for r in rows}):
        rs = [r for r in rows if (r["set"], r["split"]) == key]
        w = np.array([r["seconds"] for r in rs])
        out.append({"set": key[0], "split": key[1], "conversations": len(rs),
                    "der_mean": round(float(np.mean([r["der"] for r in rs])), 4),
                    "der_max": round(max(r["der"] for r in rs), 4),
                    "count_right": f"{sum(r['found'] == r['speakers'] for r in rs)}/{len(rs)}",
                    "one_speaker_der_mean": round(float(np.mean([r["one_speaker_der"] for r in rs])), 4),
                    "seconds": round(float(w.sum()), 1)})
    return out


def conversations(sets: list[str]) -> list[Conversation]:
    out = []
    if "sample" in sets:
        out.append(pyannote_sample())
    if "real" in sets:
        out += real_conversations()
    if "tts" in sets:
        out += tts_conversations()
    if "room" in sets:
        built = [c for c in out if c.set in ("real", "tts")]
        if not built:
            built = real_conversations() + tts_conversations()
        out += [in_room(c, seed) for seed, c in enumerate(built)]
    if "solo" in sets:
        solos = real_solos() + tts_solos()
        out += solos + [in_room(c, 100 + seed, "solo") for seed, c in enumerate(solos)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="sample,real,tts,room,solo")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--out", default=str(RESULTS / "speakers.json"))
    ap.add_argument("--separability", action="store_true",
                    help="also print how far apart the true voices are in the encoder's space (the method's pieces and 3 s ones)")
    ap.add_argument("--own-vad", action="store_true",
                    help="diarize with the speaker step's own VAD pass (a backfill), not the probabilities transcription keeps")
    ap.add_argument("--dense-pieces", type=int,
                    help="read every piece only this far (the method's default: DiarizeOptions.dense_pieces); 0: sparse from the start")
    ap.add_argument("--speed-child", help=argparse.SUPPRESS)
    ap.add_argument("--asr-child", help=argparse.SUPPRESS)
    ap.add_argument("--every-piece", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.asr_child:
        return _asr_child(args.asr_child)
    if args.speed_child:
        return _speed_child(args.speed_child, args.every_piece)
    from mediaflow import diarize as D

    load0 = os.getloadavg()[0]
    convs = conversations(args.sets.split(","))
    opts = D.DiarizeOptions() if args.dense_pieces is None else D.DiarizeOptions(dense_pieces=args.dense_pieces)
    rows = [score(c, own_vad=args.own_vad, options=opts) for c in convs]
    # the count given (as from a feed's podcast:person tags): how well the pieces are assigned alone
    rows += [score(c, c.speakers, own_vad=args.own_vad, options=opts) for c in convs if c.set == "sample"]
    print(f"method {D.METHOD}, SAME_SPEAKER {D.SAME_SPEAKER}, collar {COLLAR} s, "
          f"VAD {'own' if args.own_vad else 'kept by transcription'}, dense_pieces {opts.dense_pieces}\n")
    print(table(rows))
    summ = summary(rows)
    print()
    for s in summ:
        print(f"{s['set']:7s} {s['split']:9s} DER mean {s['der_mean']:.1%} max {s['der_max']:.1%}, "
              f"count right {s['count_right']}, one-speaker DER {s['one_speaker_der_mean']:.1%}")
    sep = []
    if args.separability:
        sep = [separability(c, p) for c in convs for p in (D.DiarizeOptions().piece_s, 3.0)]
        print("\n| conversation | split | piece s | within min | cross max | centroid cosine max |")
        print("|---|---|---|---|---|---|")
        for r in sep:
            within = "–" if r["within_min"] is None else f"{r['within_min']:.3f}"
            print(f"| {r['name']} | {r['split']} | {r['piece_s']:.1f} | {within} | {r['cross_max']:.3f} | "
                  f"{r['centroid_cos_max']:.3f} |")
    sp = [] if args.no_speed else speed([c for c in convs if c.set in ("real", "tts")] or convs)
    for r in sp:
        print(f"{r['minutes']} min from a file, VAD {r['vad']}{', every piece (v4)' if r['every_piece'] else ''}, "
              f"{r['embedded_share']:.0%} of pieces embedded: "
              f"{r['cpu_s_per_hour']} CPU s per hour of audio ({r['share_of_asr']:.0%} of transcription's "
              f"{r['asr_cpu_s_per_hour']}), "
              f"{r['wall_s_per_hour']} s wall per hour; RSS {r['loaded_rss_mb']} MB loaded, peak "
              f"{r['peak_rss_mb']} MB while diarizing ({r['load_peak_rss_mb']} MB while loading)")
    out = {"method": D.METHOD, "same_speaker": D.SAME_SPEAKER, "options": vars(opts), "own_vad": args.own_vad,
           "collar_s": COLLAR, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
           "load_before": round(load0, 2), "load_after": round(os.getloadavg()[0], 2),
           "date": time.strftime("%Y-%m-%d"), "rows": rows, "summary": summ, "speed": sp, "separability": sep}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
