"""Text to speech: the shared frontend, the Kokoro teacher (heard back by Whisper), and the voice registry."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import wer
from mediaflow import audio
from mediaflow.errors import DependencyMissing, InputTooLarge, InvalidInput, ModelUnavailable
from mediaflow.tts import frontend, kokoro, voices
from mediaflow.tts.frontend import check_text, normalize, prepare, split_sentences
from mediaflow.tts.voices.base import Entry, Voice, VoiceInfo

RECOMMENDATION = "Because you listened to The History Hour, try Deep Time: it gets into volcanoes and ancient oceans."


@pytest.fixture(scope="module")
def teacher() -> voices.Voice:
    return voices.get_voice("teacher", threads=2)


# -- frontend --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, spoken",
    [
        ("Ep. #12: AI/ML & You", "Episode twelve: AI slash ML and You"),
        ("It costs $9.99/month.", "It costs nine dollars and ninety-nine cents per month."),
        ("$1.2 million and £3.50", "one point two million dollars and three pounds and fifty pence"),
        ("45% of 1,250 listeners", "forty-five percent of one thousand two hundred fifty listeners"),
        ("In 1999, 2005 and 2024", "In nineteen ninety-nine, two thousand five and twenty twenty-four"),
        ("the 1990s and the '80s", "the nineteen nineties and the eighties"),
        ("the 21st and 3rd", "the twenty-first and third"),
        ("March 3rd, 2024 at 7:30 pm", "March third, twenty twenty-four at seven thirty PM"),
        ("2024-03-05 at 10:05", "March fifth, twenty twenty-four at ten oh five"),
        ("on the 3rd of March", "on the third of March"),
        ("Dr. Jane Smith lives on Baker St. in St. Louis.",
         "Doctor Jane Smith lives on Baker Street in Saint Louis."),
        ("Spotify vs. Apple, e.g. charts, i.e. lists, etc.",
         "Spotify versus Apple, for example charts, that is lists, et cetera."),
        ("See https://www.example.com/shows/ep-4?ref=x.", "See example dot com slash shows slash ep dash four."),
        ("Write to jane.doe@example.org", "Write to jane dot doe at example dot org"),
        ("GPT-4 in 4K, pages 10-12, 50-60%", "GPT four in four K, pages ten to twelve, fifty to sixty percent"),
        ("S02E05 | The Guest", "season two, episode five, The Guest"),
        ("It was 100°F, 5km away, a 45 min. drive.", "It was one hundred degrees Fahrenheit, five kilometers away, "
                                                     "a forty-five minutes drive."),
        ("The Battle of Hastings, 1066.", "The Battle of Hastings, ten sixty-six."),
    ],
)
def test_normalize_writes_out_what_a_narrator_says(text, spoken):
    assert normalize(text) == spoken


@pytest.mark.parametrize(
    "text, spoken",
    [
        ('<speak><break time="10s"/>Hello there. <prosody rate="slow">Welcome</prosody> back.</speak>',
         "Hello there. Welcome back."),
        ('<?xml version="1.0"?><speak version="1.1"><s>One</s><s>two</s></speak>', "One\n\ntwo"),
        ("\x1b[31mRed\x1b[0m alert, \x1b[1;4mbold\x1b[m news", "Red alert, bold news"),
        ("\x1b]0;window title\x07Hello\x00 wor\u200bld\x7f", "Hello world"),
        ("<p>Coffee &amp; tea</p><!-- not this --><script>alert(1)</script><b>Done</b>", "Coffee and tea\nDone"),
        ("If a < b and 3 > 2", "If a b and three two"),  # comparisons are no tags: only the symbols go
    ],
)
def test_markup_and_control_characters_are_never_spoken(text, spoken):
    assert normalize(text) == spoken


def test_an_ssml_break_is_a_pause_between_sentences():
    assert split_sentences(normalize('Hello<break time="10s"/>world<br>again')) == ["Hello", "world", "again"]
    with pytest.raises(InvalidInput, match="nothing to say"):
        prepare('<speak><break time="3s"/></speak>\x1b[0m')


def test_numbers_written_out_are_bounded_before_anything_is_spoken():
    with pytest.raises(InputTooLarge, match="4,000 words once numbers.*limit is 1,500 words"):
        frontend.check_spoken("9" * 4000)
    paragraph = "Listeners who enjoy long conversations about science return for more. " * 60  # ~4,300 characters
    assert frontend.check_spoken(paragraph, speed=1.0)  # about five minutes: within the bound
    with pytest.raises(InputTooLarge, match=r"about \d+ min of audio at speed 0.25; the limit is 15 min"):
        frontend.check_spoken(paragraph, speed=0.25)


@pytest.mark.parametrize("voice_id", ["teacher", "hibari", "piper-joe", "student"])
def test_every_voice_refuses_output_over_the_bounds(voice_id, monkeypatch):
    if not voices.voice_info(voice_id).available:
        pytest.skip(f"{voice_id} is not installed")
    v = voices.get_voice(voice_id, threads=2)
    monkeypatch.setattr(v, "speak", lambda *a: pytest.fail("synthesis started"))  # refused before it
    with pytest.raises(InputTooLarge, match="words"):
        v.stream("9" * 4000)
    with pytest.raises(InputTooLarge, match="of audio"):
        v.synthesize("Try the next episode. It is about volcanoes.", max_seconds=1.0)


def _tone_voice(seconds_per_sentence: float) -> Voice:
    class Tone(Voice):
        voice_id, sample_rate = "tone", 8000

        def speak(self, text, speed):
            todo = split_sentences(normalize(text))
            return (np.full(int(8000 * seconds_per_sentence), 0.1, np.float32) for _ in todo)

        def files(self):
            return []

        def count_parameters(self):
            return 0

    return Tone()


def test_audio_that_passes_the_bound_anyway_is_stopped():
    tone = _tone_voice(4.0)  # far longer than the estimate for "One." says
    chunks = tone.stream("One. Two. Three.", max_seconds=6.0)
    assert len(next(chunks)) == 4 * 8000
    with pytest.raises(InputTooLarge, match="passed the limit of 6 s of audio"):
        next(chunks)
    with pytest.raises(InputTooLarge, match="passed the limit"):
        tone.synthesize("One. Two.", max_seconds=6.0)


def test_speed_takes_openais_range():
    assert (voices.MIN_SPEED, voices.MAX_SPEED) == (0.25, 4.0)
    assert voices.check_speed(0.25) == 0.25 and voices.check_speed(4.0) == 4.0
    for bad in (0.24, 4.01):
        with pytest.raises(InvalidInput, match="speed"):
            voices.check_speed(bad)


def test_sentences_split_at_end_punctuation_but_not_after_initials_or_abbreviations():
    text = normalize("J. K. Rowling met Dr. Smith at 9 a.m. Then they left! Was it fun? Yes.\nNew line")
    assert split_sentences(text) == [
        "J. K. Rowling met Doctor Smith at nine AM.", "Then they left!", "Was it fun?", "Yes.", "New line",
    ]


@pytest.mark.parametrize("text", ["", "   \n ", "...!?", "日本語のテキスト"])
def test_empty_or_unspeakable_text_is_invalid_input(text):
    with pytest.raises(InvalidInput, match="nothing to say"):
        prepare(text)


def test_text_over_the_limit_is_too_large():
    with pytest.raises(InputTooLarge, match=str(frontend.MAX_CHARS)):
        check_text("word " * (frontend.MAX_CHARS // 5 + 1))
    with pytest.raises(InputTooLarge, match="limit is 40"):
        check_text("x" * 41, max_chars=40)


def test_long_text_is_chunked_under_the_token_limit_in_sentence_groups():
    sentence = "Listeners who enjoy long conversations about science often return for the follow-up episodes."
    chunks = prepare(" ".join([sentence] * 40))
    assert len(chunks) > 1
    assert all(0 < len(c.ids) <= frontend.KOKORO_MAX_TOKENS for c in chunks)
    assert sum(c.text.count(sentence) for c in chunks) == 40  # whole sentences, none lost
    one_run_on = prepare(", ".join(["another clause without end"] * 60) + ".")
    assert len(one_run_on) > 1 and all(len(c.ids) <= frontend.KOKORO_MAX_TOKENS for c in one_run_on)


def test_phonemes_are_in_the_teachers_alphabet():
    (chunk,) = prepare("Hello there.")
    assert chunk.phonemes == "həlˈO ðˈɛɹ."
    assert chunk.ids == [frontend.vocab()[c] for c in chunk.phonemes]


# -- the teacher -----------------------------------------------------------------------------------
def test_teacher_speech_is_understood_by_whisper(teacher, tmp_path):
    from mediaflow.asr import Transcriber

    speech = teacher.synthesize(RECOMMENDATION)
    assert speech.dtype == np.float32 and teacher.sample_rate == 24_000
    assert 3.0 < len(speech) / teacher.sample_rate < 12.0
    assert 0.05 < np.abs(speech).max() <= 1.0
    path = tmp_path / "teacher.wav"
    path.write_bytes(audio.encode(speech, teacher.sample_rate, "wav"))
    heard = Transcriber("tiny.en", threads=2).transcribe(audio.decode(path)).text
    assert wer(RECOMMENDATION, heard) <= 0.25, heard


def test_alignment_durations_cover_the_audio_exactly(teacher):
    (a,) = teacher.teacher.synthesize_with_alignment("Hello there. This is a short test.")
    assert a.ids[0] == 0 and a.ids[-1] == 0 and len(a.ids) == len(a.durations)
    assert list(a.ids[1:-1]) == [frontend.vocab()[c] for c in a.phonemes]
    assert (a.durations >= 1).all()
    assert int(a.durations.sum()) * kokoro.HOP == len(a.audio)


def test_faster_speed_makes_shorter_audio(teacher):
    text = "Try this episode next."
    normal = teacher.synthesize(text, speed=1.0)
    fast = teacher.synthesize(text, speed=1.3)
    assert len(fast) < 0.9 * len(normal)
    with pytest.raises(InvalidInput, match="speed"):
        teacher.synthesize(text, speed=5.0)


def test_stream_yields_one_chunk_per_sentence_and_the_first_before_the_next_is_made(teacher, monkeypatch):
    text = "The first idea is short. The second one is a bit longer than that. And here is the third."
    made = []  # phoneme counts of the model calls, in order
    real = teacher.teacher.from_ids
    monkeypatch.setattr(teacher.teacher, "from_ids", lambda ids, speed=1.0: made.append(len(ids)) or real(ids, speed))
    chunks = teacher.stream(text)
    assert inspect.isgenerator(chunks) and made == []  # phonemised; nothing spoken until asked
    first = next(chunks)
    assert len(made) == 1  # the first sentence is out before the second is made
    rest = list(chunks)
    assert len(made) == 3 and made == [len(c.ids) for c in prepare(text, group=False)]  # in order, none lost
    assert all(len(c) > 0.3 * teacher.sample_rate for c in [first, *rest])


def test_stream_checks_the_text_before_the_first_chunk(teacher):
    with pytest.raises(InvalidInput):
        teacher.stream("   ")


def test_voice_packs_are_fetched_once_and_left_alone(tmp_path):
    paths = kokoro.ensure_voices(None, ("af_heart",))  # the shared cache, as the other tests use it
    before = paths["af_heart"].stat().st_mtime_ns
    again = kokoro.ensure_voices(None, ("af_heart",))
    assert again == paths and paths["af_heart"].stat().st_mtime_ns == before
    assert paths["af_heart"].stat().st_size == 510 * 256 * 4


def test_missing_npm_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no npm on PATH
    with pytest.raises(DependencyMissing, match="npm"):
        kokoro.ensure_voices(tmp_path / "cache", ("am_michael",))


# -- registry --------------------------------------------------------------------------------------
def test_registry_lists_voices_with_their_costs():
    listed = {v.id: v for v in voices.list_voices()}
    assert {"teacher", "hibari"} <= set(listed)
    t = listed["teacher"]
    assert t.sample_rate == 24_000 and t.parameters > 80_000_000 and t.license.startswith("Apache")
    assert listed["hibari"].parameters < t.parameters / 10
    shipped = voices.student_checkpoint().is_file()  # models/tts_student/student.pt, once trained
    assert ("student" in listed) == shipped == voices.voice_info("student").available
    if shipped:
        assert listed["student"].parameters < 8_000_000 and listed["student"].size_bytes < 10_000_000


@pytest.mark.parametrize("voice_id", ["teacher", "hibari", "piper-joe", "student"])
def test_listed_sizes_and_parameter_counts_are_the_models_own(voice_id):
    info = voices.voice_info(voice_id)
    if not info.available:
        pytest.skip(f"{voice_id} is not installed")
    voice = voices.get_voice(voice_id, threads=2)
    files = voice.files()
    assert files and all(Path(f).is_file() for f in files)
    assert info.size_bytes == sum(Path(f).stat().st_size for f in files)
    if info.parameters is not None:  # None: a student checkpoint other than the shipped one
        assert info.parameters == voice.count_parameters()


def test_listed_speeds_say_they_are_reference_machine_figures():
    for v in voices.list_voices(include_unavailable=True):
        if v.rtf is not None:
            assert v.cpu_rtf and v.first_audio_s and "reference machine" in v.speed_measured
            assert re.search(r"\b20\d\d-\d\d-\d\d\b", v.speed_measured)  # dated


def test_a_new_voice_is_one_voice_class_and_one_registry_entry(monkeypatch):
    class Tone(Voice):
        """A 0.1 s tone per sentence: the smallest engine."""

        voice_id, sample_rate = "tone", 8000

        def speak(self, text, speed):
            todo = split_sentences(normalize(text))
            return (np.full(int(800 / speed), 0.1, np.float32) for _ in todo)

        def files(self):
            return []

        def count_parameters(self):
            return 0

    def info(available):
        return VoiceInfo("tone", "a test tone", "numpy", 8000, 0, 0, "CC0", None, None, None, None, available, "")

    monkeypatch.setitem(voices.REGISTRY, "tone", Entry("tone", info, lambda: True, lambda threads: Tone()))
    assert "tone" in {v.id for v in voices.list_voices()}
    tone = voices.get_voice("tone", threads=1)
    assert [len(a) for a in tone.stream("One. Two, three.", speed=2.0)] == [400, 400]
    assert len(tone.synthesize("One.")) == 800
    # the checks every voice gets from `Voice`, whatever its engine
    with pytest.raises(InvalidInput, match="speed"):
        tone.stream("One.", speed=9)
    with pytest.raises(InvalidInput, match="empty"):
        tone.synthesize("   ")
    with pytest.raises(InputTooLarge):
        tone.stream("One. " * 10, max_chars=20)


def test_unknown_voice_lists_the_known_ones():
    with pytest.raises(InvalidInput, match="teacher.*hibari"):
        voices.get_voice("no-such-voice")


def test_voice_names_are_read_one_way_whatever_the_caller():
    assert voices.resolve_voice("  HIBARI ") == voices.resolve_voice("hibari") == "hibari"
    assert voices.get_voice("Hibari", threads=2) is voices.get_voice("hibari", threads=2)
    assert voices.voice_info("TEACHER").id == "teacher"
    default = voices.default_voice_id()
    assert voices.resolve_voice(None) == voices.resolve_voice("") == voices.resolve_voice("Alloy") == default
    assert voices.resolve_voice("ECHO") == "kokoro-michael" and voices.resolve_voice("fable") == "kokoro-emma"
    assert voices.openai_voices()["nova"] == default


def test_an_unknown_voice_name_is_echoed_cut():
    with pytest.raises(InvalidInput) as err:
        voices.resolve_voice("x" * 10_000)
    message = str(err.value)
    assert "'" + "x" * 40 + "'… (10,000 characters)" in message and len(message) < 400
    assert "alloy" in message  # OpenAI's names are listed as well as ours


def test_student_appears_once_its_checkpoint_exists(tmp_path, monkeypatch):
    ckpt = tmp_path / "student.pt"
    ckpt.write_bytes(b"not a real checkpoint")
    monkeypatch.setenv(voices.STUDENT_ENV, str(ckpt))
    assert "student" in {v.id for v in voices.list_voices()}
    monkeypatch.delenv(voices.STUDENT_ENV)
    monkeypatch.setenv(voices.STUDENT_ENV, str(tmp_path / "missing.pt"))
    with pytest.raises(ModelUnavailable, match="checkpoint"):
        voices.get_voice("student")


@pytest.mark.parametrize("voice_id", ["hibari", "piper-joe"])
def test_other_voices_follow_the_same_protocol(voice_id):
    if voice_id not in {v.id for v in voices.list_voices()}:
        pytest.skip(f"{voice_id} is not installed")
    v = voices.get_voice(voice_id, threads=2)
    text = "Because you liked Ep. 3, try this one. It is short."
    chunks = list(v.stream(text))
    assert len(chunks) == 2
    whole = v.synthesize(text)
    assert whole.dtype == np.float32 and len(whole) / v.sample_rate > 1.0
    with pytest.raises(InvalidInput):
        v.synthesize("")


# -- the packed phonemiser and the encoders ----------------------------------------------------------
PHONEMISER_TEXTS = [
    RECOMMENDATION,
    "Siobhan Delacroix read the record; we'll record a live show and live in Reykjavik.",
    "Dr. Nakamura's NASA talk: 3.5 million km, $12.99, 1990s, the 21st, i.e. Zoë, Łukasz and Nguyễn.",
    "Qwxyzzle glorped the frumious bandersnatch!? Don't, won't, y'all, rock'n'roll, GPT-4o, e-mail.",
    "Is it 'the' or 'thee'? Read it aloud, then wind the clock and feel the wind.",
]


@pytest.mark.parametrize("british", [False, True], ids=["us", "gb"])
def test_the_packed_phonemiser_reads_as_hibaris_own(british):
    from mediaflow.tts import g2p as packed

    stock = packed.g2p_module().G2P(british=british)  # hibari's own, its tables as dicts
    lean = frontend._g2p(british)
    assert vars(lean).keys() == vars(stock).keys()  # PackedG2P sets what G2P.__init__ sets
    for text in PHONEMISER_TEXTS:
        sentence = frontend._hibari_normalize(normalize(text))
        tokens = [[(t.text, t.tag, t.whitespace, t.phonemes) for t in g.phonemize_tokens(g.tokenize(sentence))]
                  for g in (lean, stock)]
        assert tokens[0] == tokens[1]
        assert lean(sentence) == stock(sentence)
    # every lexicon word and tagger feature answers what the dicts answer, and unknown keys nothing
    gold, silver = stock.lexicon.golds.d, stock.lexicon.silvers.d
    for name, table, packed_table in (("gold", gold, lean.lexicon.golds.d), ("silver", silver, lean.lexicon.silvers.d),
                                      ("weights", stock.tagger.weights, lean.tagger.weights)):
        assert len(packed_table) == len(table), name
        for key in list(table)[::97]:
            assert packed_table.get(key) == table[key], (name, key)
        assert packed_table.get("no such key ×") is None and packed_table.get(None) is None


def test_the_packed_tables_are_made_once_and_kept(tmp_path, monkeypatch):
    from mediaflow.tts import g2p as packed

    monkeypatch.setenv("MEDIAFLOW_TTS_CACHE", str(tmp_path))
    made = packed.tables(False)  # by a child process, into the cache
    kept = list(tmp_path.glob("g2p-us-*.bin"))
    assert len(kept) == 1
    again = packed.load(kept[0].read_bytes())
    assert again["gold"].get("volcano") == made["gold"].get("volcano") and again["gold"].get("volcano")
    assert again["tagger"]["weights"].get("b") == made["tagger"]["weights"].get("b")
    assert packed.tables(False)["silver"].get("aaron") == made["silver"].get("aaron")  # read back, not made anew
    assert list(tmp_path.glob("g2p-us-*.bin")) == kept
    # a damaged file is packed anew in the process rather than trusted
    kept[0].write_bytes(kept[0].read_bytes()[:1000])
    assert packed.tables(False)["gold"].get("volcano") == made["gold"].get("volcano")


SAMPLE = (0.3 * np.sin(2 * np.pi * 220 * np.arange(2 * 24_000) / 24_000)).astype(np.float32)


@pytest.mark.parametrize("whole", [False, True], ids=["streamed", "whole"])
@pytest.mark.parametrize("fmt", ["mp3", "ogg-opus", "aac", "flac"])
def test_every_encoder_makes_audio_of_the_length_it_was_given(fmt, whole, tmp_path):
    from mediaflow.tts import encoding

    enc = encoding.Encoder(fmt, 24_000, whole=whole)
    data = b"".join(enc.encode(SAMPLE[i: i + 7_000]) for i in range(0, len(SAMPLE), 7_000)) + enc.finish()
    path = tmp_path / f"tone.{fmt}"
    path.write_bytes(data)
    heard = audio.decode(path, sample_rate=24_000)
    assert abs(len(heard) - len(SAMPLE)) / 24_000 < 0.1, len(heard)  # codecs pad by a frame or so
    spectrum = np.abs(np.fft.rfft(heard))
    assert abs(np.argmax(spectrum) * 24_000 / len(heard) - 220) < 5  # the tone, not noise
    if fmt == "mp3" and whole and encoding.lame_library():  # LAME's Info frame: decoders trim its delay
        assert abs(len(heard) - len(SAMPLE)) <= 24


def test_mp3_from_the_system_lame_and_from_pyav_decode_alike(tmp_path):
    from mediaflow.tts import encoding

    if encoding.lame_library() is None:
        pytest.skip("no system libmp3lame: MP3 is PyAV's")
    out = {}
    for name, enc in (("lame", encoding.Encoder("mp3", 24_000)), ("libav", encoding._Libav("mp3", 24_000))):
        assert (name == "lame") == isinstance(getattr(enc, "backend", None), encoding._Lame)
        path = tmp_path / f"{name}.mp3"
        path.write_bytes(enc.encode(SAMPLE) + enc.finish())
        out[name] = audio.decode(path, sample_rate=24_000)
    n = min(map(len, out.values()))
    assert abs(len(out["lame"]) - len(out["libav"])) < 1200
    assert np.corrcoef(out["lame"][:n], out["libav"][:n])[0, 1] > 0.9  # the same tone, aligned


@pytest.mark.parametrize("voice_id", ["teacher", "hibari", "piper-joe", "student"])
def test_every_voice_says_the_same_text_the_same_way(voice_id):
    """Narrations are cached by their text and voice, and test speech must be reproducible."""
    if not voices.voice_info(voice_id).available:
        pytest.skip(f"{voice_id} is not installed")
    v = voices.get_voice(voice_id, threads=2)
    first = v.synthesize("Thanks for having me. Rivers are never still.")
    assert len(first) > v.sample_rate // 2
    np.testing.assert_array_equal(v.synthesize("Thanks for having me. Rivers are never still."), first)
