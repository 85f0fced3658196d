"""The distilled TTS student: its corpus, its training, and the shipped checkpoint as a voice."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import wer
from flows import distill_steps as steps
from mediaflow.errors import InvalidInput, ModelUnavailable
from mediaflow.tts import encoding, voices
from mediaflow.tts.frontend import prepare
from mediaflow.tts.student_onnx import OnnxStudent, count_parameters
from mediaflow.tts.voices.student import RUNTIME_ENV, onnx_graphs
from models.tts_student import CheckpointError, corpus, load_voice
from models.tts_student.export import export_onnx
from models.tts_student.model import AcousticModel

ROOT = Path(__file__).resolve().parents[1]

SENTENCE = "Because you listened to Deep Currents, try Field Notes: it gets into ocean storms."
LONG = " ".join([
    "The first episode covers the history of coffee, from the monasteries of Yemen to the cafes of Vienna.",
    "The second one, recorded in Lisbon on a rainy Tuesday, follows a baker who gets up at three every morning,",
    "walks to the market, buys flour, salt and butter, talks to the fishermen about the weather and the tides,",
    "and then bakes two hundred loaves before the city wakes up.",
] * 2)


@pytest.fixture(scope="module")
def student():
    if not voices.student_checkpoint().is_file():
        pytest.skip("no student checkpoint shipped")
    return voices.get_voice("student", threads=2)


# -- corpus -----------------------------------------------------------------------------------------
def test_the_corpus_is_varied_and_holds_out_every_benchmark_sentence():
    held = steps.held_out()
    lines = corpus.generate(3000, seed=0, held_out=held, version=1)
    assert len(set(lines)) == 3000
    assert all(5 <= len(s.split()) <= 20 for s in lines)
    assert not set(lines) & set(held)
    bench_runs = set().union(*(corpus.ngrams(s) for s in held))
    assert not any(corpus.ngrams(s) & bench_runs for s in lines)
    assert sum(s.endswith("?") for s in lines) > 200 and sum(any(c.isdigit() for c in s) for s in lines) > 500


def test_the_second_corpus_draws_on_three_sources_and_holds_out_both_sets():
    held = steps.held_out()
    own = steps.read_sentences(steps.OWN_SENTENCES)
    assert len(own) >= 40 and set(own) <= set(held)  # the hand-written set is held out too
    lines = corpus.generate(2000, seed=3, held_out=held)
    assert lines == corpus.generate(2000, seed=3, held_out=held)  # the seed decides it
    assert len(set(lines)) == 2000 and all(2 <= len(s.split()) <= 32 for s in lines)
    runs = set().union(*(corpus.ngrams(s) for s in held))
    assert not any(corpus.ngrams(s) & runs for s in lines) and not set(lines) & set(held)
    # sentences people wrote, next to the frames
    quotes = set(corpus.quotes())
    assert len(quotes) > 5000 and 300 < sum(s in quotes for s in lines) < 700
    # what the student stumbled on: names from other languages, addresses, prices, long and short
    assert sum(bool(re.search(r"[À-ɏḀ-ỿ]", s)) for s in lines) > 40
    assert sum("@" in s for s in lines) > 10 and sum(bool(re.search(r"https?://|www\.|\.(com|org|net)\b", s)) for s in lines) > 20
    assert sum(bool(re.search(r"[$€£¥]\d", s)) for s in lines) > 40
    assert sum(s.endswith("!") for s in lines) > 40 and sum(s.endswith("?") for s in lines) > 150
    assert sum(len(s.split()) >= 22 for s in lines) > 40 and sum(len(s.split()) <= 4 for s in lines) > 10


# -- training ---------------------------------------------------------------------------------------
def test_a_tiny_student_trained_on_teacher_speech_lowers_its_loss_and_loads(tmp_path):
    data_dir = tmp_path / "distill"
    (data_dir / "corpus.txt").parent.mkdir(parents=True)
    (data_dir / "corpus.txt").write_text("Try this show next.\nIt gets into ocean storms.\nWhat happened in 1999?\n")
    assert steps.synthesize(data_dir, threads=2) == 1
    # the steps as run by hand: `python -m flows.distill_steps features|train ...`
    steps.main(["features", "--data", str(data_dir)])
    assert len(list((data_dir / "mels").glob("*.npz"))) == 1
    steps.main(["train", "--data", str(data_dir), "--preset", "tiny", "--out", str(tmp_path / "run"), "--set", "ac_steps=30"])
    checkpoint = tmp_path / "run" / "student.pt"
    history = torch.load(checkpoint.with_name("acoustic.pt"), weights_only=True)["history"]
    losses = [row["train"]["mel_l1"] for row in history if "train" in row]
    assert len(losses) >= 3 and losses[-1] < 0.9 * losses[0], losses
    voice = load_voice(checkpoint)
    audio, durations = voice.from_ids([0, 50, 83, 156, 16, 0])
    assert audio.dtype == np.float32 and len(audio) == durations.sum() * 600
    # a warm start for a two-voice student: the old weights, and a speaker table at zero, so voice 0 is the old one
    from dataclasses import replace

    from models.tts_student import train

    two = AcousticModel(replace(voice.acoustic.cfg, voices=["af_heart", "am_michael"]))
    train.init_from = str(checkpoint)
    try:
        train.warm_start(two, "acoustic", log=lambda m: None)
    finally:
        train.init_from = ""
    old_state, new_state = voice.acoustic.state_dict(), two.state_dict()
    assert all(torch.equal(old_state[k], new_state[k]) for k in old_state)
    assert not two.speaker.weight.any()
    # exported to ONNX, it speaks the same without PyTorch
    graphs = export_onnx(checkpoint)
    assert graphs == onnx_graphs(checkpoint) and all(p.is_file() for p in graphs.values())
    onnx_audio, onnx_durations = OnnxStudent(graphs).from_ids([0, 50, 83, 156, 16, 0])
    assert (onnx_durations == durations).all() and np.abs(onnx_audio - audio).max() < 1e-3
    scores = {"student": {"parameters": voice.parameters, "rtf_median": 0.01, "first_audio_s": 0.05,
                          "wer": 0.04, "mcd_db": 2.5}}
    card = tmp_path / "student.md"
    card.write_text(f"# old card\n\n## Training\n\nold numbers\n\n{steps.MEASURED}\n\nold scores\n\n"
                    "## Captions\n\nWritten by hand.\n")
    shipped = steps.register(checkpoint, tmp_path / "shipped" / "student.pt", scores, card)
    assert shipped.is_file() and all(p.is_file() for p in onnx_graphs(shipped).values())  # served without torch
    text = card.read_text()
    assert f"{voice.parameters / 1e6:.2f} M parameters" in text and "| bench | student |" in text and "4 %" in text
    acoustic_rows = [ln for ln in text.splitlines() if ln.startswith("| acoustic | 30 |")]
    assert acoustic_rows and "mel_l1" in acoustic_rows[0]  # steps and the final validation loss
    assert "2 teacher utterances for training and 1 for validation" in text  # the data it learned from
    # the loss curve: step, minutes, mel L1, duration MSE; its last row is the last step, once (the minutes are
    # whatever the clock said)
    curve = [ln for ln in text.splitlines() if re.fullmatch(r"\| \d+ \| [\d.]+ \| \d+\.\d{4} \| \d+\.\d{4} \|", ln)]
    assert curve and curve[-1].startswith("| 30 | ") and sum(ln.startswith("| 30 | ") for ln in curve) == 1
    assert str(tmp_path) not in text and "the distillation data dir" in text  # no path of this machine
    # what was written by hand survives a new registration; what the writer makes is replaced, once
    assert text.endswith("\n## Captions\n\nWritten by hand.\n") and "old numbers" not in text and "old scores" not in text
    assert text.count("## Training") == 1 and text.startswith("# The TTS student")


def test_a_student_of_two_teacher_voices_speaks_in_each_and_the_registry_serves_both(tmp_path, monkeypatch):
    data_dir = tmp_path / "distill"
    data_dir.mkdir()
    (data_dir / "corpus.txt").write_text("Try this show next.\nIt gets into ocean storms.\n"
                                         "What happened in 1999?\nThanks for listening.\n")
    monkeypatch.setattr(steps, "SHARD_SIZE", 2)  # two shards: the first in af_heart, the second in am_michael
    assert steps.synthesize(data_dir, threads=2) == 2
    from models.tts_student.data import read_shard

    assert [{u["voice"] for u in read_shard(p)} for p in steps.shards(data_dir)] == [{"af_heart"}, {"am_michael"}]
    done = steps.progress(data_dir)
    assert (done["shards"], done["of"]) == (2, 2) and set(done["hours"]) == {"af_heart", "am_michael"}
    assert 0 < done["hours"]["am_michael"] < 0.01 and done["estimated_total_hours"] == done["total_hours"]
    steps.features(data_dir)
    checkpoint = steps.train(data_dir, preset="tiny", parallel=False)
    student = load_voice(checkpoint)
    assert student.voices == ["af_heart", "am_michael"]
    assert student.acoustic.speaker.weight.shape == (2, student.acoustic.cfg.d_model)
    ids = [0, 50, 83, 156, 16, 0]
    (a0, d0), (a1, d1) = student.from_ids(ids, speaker=0), student.from_ids(ids, speaker=1)
    assert len(a0) == d0.sum() * 600 and len(a1) == d1.sum() * 600 and not np.allclose(a0[:len(a1)], a1[:len(a0)])
    # the ONNX encoder takes the speaker; each voice speaks as under PyTorch
    onnx_student = OnnxStudent(export_onnx(checkpoint))
    assert onnx_student.voices == ["af_heart", "am_michael"]
    for k, (audio, durations) in enumerate(((a0, d0), (a1, d1))):
        o_audio, o_durations = onnx_student.from_ids(ids, speaker=k)
        assert (o_durations == durations).all() and np.abs(o_audio - audio).max() < 1e-3
    # the registry: `student` is the first voice, `student-male` the second
    monkeypatch.setenv(voices.STUDENT_ENV, str(checkpoint))
    assert voices.voice_info("student-male").available
    female, male = voices.get_voice("student", threads=1), voices.get_voice("student-male", threads=1)
    assert (female.speaker, male.speaker) == (0, 1)
    text = "Try this show next."
    assert not np.array_equal(female.synthesize(text), male.synthesize(text))
    row = {"wer": 0.05, "mcd_db": 1.8}
    card = steps.model_card(student, checkpoint, {"bench": {"student": row, "student-male": row},
                                                   "own": {"student": row, "student-male": row}})
    assert "`af_heart` and `am_michael` voices" in card
    assert {ln.split(" | ")[0] + " | " + ln.split(" | ")[1] for ln in card.splitlines() if "5 %" in ln} == {
        "| bench | student", "| bench | student-male", "| own | student", "| own | student-male"}


def test_a_local_decoder_speaks_its_first_piece_from_a_prefix_of_the_sentence(tmp_path):
    data_dir = tmp_path / "distill"
    data_dir.mkdir()
    (data_dir / "corpus.txt").write_text("Try this show next.\nIt gets into ocean storms.\nWhat happened in 1999?\n")
    steps.synthesize(data_dir, threads=2)
    tiny = {"d_model": 32, "n_heads": 2, "enc_layers": 1, "dec_layers": 2, "dur_channels": 32, "dec_window": 2}
    checkpoint = steps.train(data_dir, preset="tiny", parallel=False, overrides={"model_overrides": tiny})
    student = load_voice(checkpoint)
    assert student.acoustic.cfg.decoder_reach() == 2 * (2 + 1)
    ids = [0] + [50, 83, 156, 16, 102, 68] * 12 + [0]
    whole, durations = student.from_ids(ids)
    frames = int(durations.sum())
    from models.tts_student import prefix_frames

    assert 0 < prefix_frames(student.acoustic.cfg, 8, frames) < frames / 2  # the first piece needs a prefix only
    assert np.abs(np.concatenate(list(student.pieces(ids, first=8))) - whole).max() < 1e-4
    onnx_student = OnnxStudent(export_onnx(checkpoint))
    assert onnx_student.prefix_frames(16, frames) == prefix_frames(student.acoustic.cfg, 16, frames) > 0
    assert np.abs(np.concatenate(list(onnx_student.pieces(ids))) - whole).max() < 1e-3
    text = "Try this show next."


def test_student_male_is_listed_unavailable_while_the_student_knows_one_voice(tmp_path, monkeypatch):
    info = voices.voice_info("student-male")
    if voices.student_checkpoint().is_file() and "am_michael" not in voices.student.learned_voices(
            voices.student_checkpoint()):
        assert not info.available and "both teacher voices" in info.install
        with pytest.raises(ModelUnavailable, match="am_michael"):
            voices.student.MaleStudentVoice(threads=1)


def test_a_new_student_ships_only_when_it_beats_the_shipped_one_on_both_held_out_sets():
    # the shipped student's rows of 2026-12-03 (bench/tts.py, both sets), and a challenger
    shipped = {"bench": {"wer": 0.0376, "mcd_db": 1.73}, "own": {"wer": 0.127, "mcd_db": 1.83}}
    better = {"bench": {"wer": 0.0350, "mcd_db": 1.65}, "own": {"wer": 0.119, "mcd_db": 1.71}}
    assert steps.better_on_both(better, shipped) == (True, "better on both held-out sets")
    assert steps.better_on_both(better, None)[0]  # nothing shipped yet
    own_worse = {**better, "own": {"wer": 0.131, "mcd_db": 1.70}}
    ok, why = steps.better_on_both(own_worse, shipped)
    assert not ok and why == "own: WER 13.10% > 12.70%"
    same_mcd = {**better, "bench": {"wer": 0.0376, "mcd_db": 1.73}}
    assert steps.better_on_both(same_mcd, shipped) == (False, "bench: MCD 1.73 dB >= 1.73 dB")


# -- the shipped student ----------------------------------------------------------------------------
def test_the_shipped_model_card_is_what_the_card_writer_says_of_the_shipped_checkpoint():
    shipped = steps.SHIPPED
    if not shipped.is_file():
        pytest.skip("no student checkpoint shipped")
    card = (ROOT / "docs" / "student.md").read_text()
    written = steps.model_card(load_voice(shipped), shipped)
    assert card.startswith(written.rstrip("\n"))  # then the benchmark's table (`scores`)
    assert not re.search(r"(^|[\s`(])/(root|home|tmp|Users|work)/", card)  # no absolute path of any machine


def test_the_shipped_student_speaks_a_sentence_whisper_understands(student, tmp_path):
    from mediaflow.asr import Transcriber
    from mediaflow.audio import decode, encode

    speech = student.synthesize(SENTENCE)
    assert speech.dtype == np.float32 and student.sample_rate == 24_000
    assert 3.0 < len(speech) / 24_000 < 9.0 and 0.05 < np.abs(speech).max() <= 1.0
    path = tmp_path / "student.wav"
    path.write_bytes(encode(speech, 24_000, "wav"))
    heard = Transcriber("tiny.en", threads=2).transcribe(decode(path)).text
    assert wer(SENTENCE, heard) <= 0.35, heard


def test_durations_come_from_the_duration_predictor_and_speed_scales_them(student):
    ids = [c.ids for c in prepare("Try this episode next, it is short.", group=False)][0]
    audio, durations = student.model.from_ids([0, *ids, 0])
    assert len(durations) == len(ids) + 2 and (durations >= 1).all()
    assert len(audio) == durations.sum() * 600
    normal, fast = student.synthesize(SENTENCE), student.synthesize(SENTENCE, speed=1.5)
    assert 0.55 < len(fast) / len(normal) < 0.78
    with pytest.raises(InvalidInput, match="speed"):
        student.synthesize(SENTENCE, speed=4.5)  # OpenAI's range ends at 4.0


def test_long_text_is_chunked_by_the_frontend_and_streams_in_pieces_that_join_into_the_whole(student):
    chunks = student._ids(LONG)
    assert len(chunks) > 4 and all(len(ids) <= student.model.max_tokens for ids in chunks)  # 4 sentences, 2 long
    pieces = list(student.stream(LONG))
    whole = student.synthesize(LONG)
    assert len(pieces) > len(chunks) and np.allclose(np.concatenate(pieces), whole, atol=1e-4)
    # a caller that keeps the whole file asks for one piece per sentence: fewer model calls, the same audio
    sentences = list(student.say(LONG, 1.0, pieces=False))
    assert len(sentences) == len(chunks) and np.array_equal(np.concatenate(sentences), whole)
    seconds_per_word = len(whole) / 24_000 / len(LONG.split())
    assert 0.25 < seconds_per_word < 0.6  # speaking rate: nothing dropped, nothing stuck
    with pytest.raises(InvalidInput):
        student.stream("   ")


# -- the serving runtime ----------------------------------------------------------------------------
def test_the_shipped_student_is_served_on_onnx_runtime_without_importing_pytorch(tmp_path):
    import subprocess
    import sys

    # what speaking needs and no more: not PyTorch, nor hibari's synthesiser and the SciPy it brings (the
    # phonemiser is hibari's g2p package on its own), nor transformers; the encoders only when encoding
    script = (
        "import sys\n"
        "from mediaflow.tts.voices import get_voice\n"
        "voice = get_voice('student', threads=1)\n"
        "audio = voice.synthesize('Try Field Notes next: it gets into ocean storms.')\n"
        "streamed = list(voice.stream('Try Field Notes next: it gets into ocean storms.'))\n"
        "captions = voice.captioned('Try Field Notes next.')\n"
        "assert len(audio) > 24_000 and len(captions.words) == 4, (len(audio), captions.words)\n"
        "assert sum(map(len, streamed)) == len(audio)\n"
        "print(voice.runtime, *sorted(m for m in ('torch', 'transformers', 'scipy', 'hibari', 'av') if m in sys.modules))\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if k not in (voices.STUDENT_ENV, RUNTIME_ENV)}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["onnx"]


@pytest.mark.parametrize("fmt", ["pcm", "wav", "mp3", "ogg-opus", "aac", "flac"])
def test_the_student_through_the_api_is_the_audio_it_makes_in_every_format(student_server, fmt, tmp_path):
    """Streamed and whole, /tts and /v1/audio/speech: the same audio as `synthesize` (to the sample for pcm
    and wav), and every compressed format decodes to its length."""
    import httpx

    from mediaflow import audio as media

    expected = voices.get_voice("student", threads=0).synthesize(SENTENCE)  # threads=0: what the server loads
    openai_name = {"ogg-opus": "opus"}.get(fmt, fmt)
    with httpx.Client(base_url=student_server, timeout=120) as client:
        replies = [client.post("/tts", json={"text": SENTENCE, "format": fmt, "stream": stream}) for stream in (1, 0)]
        replies.append(client.post("/v1/audio/speech", json={"model": "tts-1", "input": SENTENCE,
                                                              "response_format": openai_name}))
    for r, stream in zip(replies, (True, False, True)):
        assert r.status_code == 200 and r.headers["x-voice"] == "student", r.text
        if fmt in ("pcm", "wav"):
            header = b"" if fmt == "pcm" else encoding.wav_header(24_000, None if stream else len(expected))
            assert r.content == header + encoding.pcm16(expected)
            continue
        path = tmp_path / f"speech-{stream}.{fmt}"
        path.write_bytes(r.content)
        heard = media.decode(path, sample_rate=24_000)
        assert abs(len(heard) - len(expected)) / 24_000 < 0.1, (fmt, stream, len(heard), len(expected))


@pytest.fixture(scope="module")
def student_server(tmp_path_factory):
    from conftest import serving

    if not voices.student_checkpoint().is_file():
        pytest.skip("no student checkpoint shipped")
    with serving(tmp_path_factory.mktemp("student-api"), MEDIAFLOW_TTS_STUDENT=None, **{RUNTIME_ENV: None}) as url:
        yield url


def test_the_onnx_graphs_speak_as_the_pytorch_network_does(student):
    if student.runtime != "onnx":
        pytest.skip("no ONNX graphs beside the checkpoint")
    torch_model = load_voice(student.path, threads=2)
    assert student.count_parameters() == count_parameters(onnx_graphs(student.path)) == torch_model.parameters
    for chunk in prepare(LONG, max_tokens=200, group=False)[:3]:
        ids = [0, *chunk.ids, 0]
        for speed in (1.0, 1.7):
            audio, durations = student.model.from_ids(ids, speed)
            expected, expected_durations = torch_model.from_ids(ids, speed)
            assert (durations == expected_durations).all()
            assert np.abs(audio - expected).max() < 1e-3  # float rounding only: the same weights and steps
        # streamed pieces are the whole call's audio: vocoded in other shapes, so the matrix products may sum
        # in another order (last-bit differences, ~1e-13), and the same 16-bit samples the service sends
        pieces, whole = np.concatenate(list(student.model.pieces(ids))), student.model.from_ids(ids)[0]
        assert len(pieces) == len(whole) and np.abs(pieces - whole).max() < 1e-6
        assert encoding.pcm16(pieces) == encoding.pcm16(whole)


def test_graphs_exported_from_another_checkpoint_are_not_served(tmp_path, monkeypatch):
    shipped = voices.student_checkpoint()
    if not all(p.is_file() for p in onnx_graphs(shipped).values()):
        pytest.skip("no ONNX graphs shipped")
    other = tmp_path / "student.pt"
    blob = torch.load(shipped, weights_only=True)
    blob["meta"] = {**blob.get("meta", {}), "note": "retrained"}
    torch.save(blob, other)
    for part, path in onnx_graphs(shipped).items():
        onnx_graphs(other)[part].write_bytes(path.read_bytes())
    monkeypatch.setenv(voices.STUDENT_ENV, str(other))
    voices._load.cache_clear()
    try:
        voice = voices.get_voice("student", threads=1)
        assert voice.runtime == "torch" and voice.files() == [other]  # and a warning says to re-export
        monkeypatch.setenv(RUNTIME_ENV, "onnx")
        voices._load.cache_clear()
        with pytest.raises(ModelUnavailable, match="re-export"):
            voices.get_voice("student", threads=1)
    finally:
        voices._load.cache_clear()


# -- bad checkpoints --------------------------------------------------------------------------------
def test_a_corrupt_or_foreign_checkpoint_is_a_clear_error(tmp_path, monkeypatch):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00not a checkpoint" * 100)
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_voice(junk)
    foreign = tmp_path / "foreign.pt"
    torch.save({"model": {}, "step": 3}, foreign)
    with pytest.raises(CheckpointError, match="not a mediaflow TTS student"):
        load_voice(foreign)
    with pytest.raises(CheckpointError, match="no student checkpoint"):
        load_voice(tmp_path / "missing.pt")
    monkeypatch.setenv(voices.STUDENT_ENV, str(junk))
    voices._load.cache_clear()
    try:
        with pytest.raises(ModelUnavailable, match="corrupt or truncated"):
            voices.get_voice("student", threads=1)
    finally:
        voices._load.cache_clear()
