"""The API end to end against a real uvicorn server on loopback."""

from __future__ import annotations

import json
import os
import random
import re

import pytest

from conftest import SPEECH_TEXT, wait_done, wer
from mediaflow import config


def test_upload_process_and_read_the_transcript_in_every_format(api, settings, speech_mp3):
    assert api.get("/health").json()["status"] == "ok"
    with open(speech_mp3, "rb") as f:
        r = api.post("/episodes", files={"file": ("My_Volcano-Show.mp3", f, "audio/mpeg")})
    assert r.status_code == 202, r.text
    ep = r.json()
    assert ep["status"] in ("pending", "processing", "done") and ep["title"] == "My Volcano Show"
    assert r.headers["location"] == f"/episodes/{ep['id']}"
    done = wait_done(api, ep["id"])
    assert done["status"] == "done", done["error"]
    assert done["duration_s"] > 5 and done["loudness_dbfs"] is not None

    t = api.get(f"/episodes/{ep['id']}/transcript").json()
    assert wer(SPEECH_TEXT, " ".join(s["text"] for s in t["segments"])) <= 0.1
    vtt = api.get(f"/episodes/{ep['id']}/transcript", params={"format": "vtt"})
    assert vtt.headers["content-type"].startswith("text/vtt") and vtt.text.startswith("WEBVTT")
    srt = api.get(f"/episodes/{ep['id']}/transcript", params={"format": "srt"})
    assert re.match(r"1\n\d\d:\d\d:\d\d,\d{3} --> ", srt.text)
    pod = api.get(f"/episodes/{ep['id']}/transcript", params={"format": "podcast"}).json()
    assert {"startTime", "endTime", "body"} <= set(pod["segments"][0])
    text = api.get(f"/episodes/{ep['id']}/transcript", params={"format": "text"}).text
    assert "volcano" in text.lower()
    bad = api.get(f"/episodes/{ep['id']}/transcript", params={"format": "docx"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_input"

    # the same bytes again: the same episode, already done, nothing new stored
    with open(speech_mp3, "rb") as f:
        again = api.post("/episodes", files={"file": ("copy.mp3", f, "audio/mpeg")})
    assert again.status_code == 200 and again.json()["id"] == ep["id"]
    listing = api.get("/episodes").json()
    assert listing["total"] == 1 and listing["items"][0]["id"] == ep["id"]
    assert list((settings.data_path / "incoming").iterdir()) == []


def test_register_a_path_inside_the_data_dir_but_never_outside(api, settings, speech_wav, tmp_path):
    inside = settings.data_path / "inbox" / "talk.wav"
    inside.parent.mkdir(parents=True)
    inside.write_bytes(speech_wav.read_bytes())
    r = api.post("/episodes", data={"path": "inbox/talk.wav", "title": "A talk"})
    assert r.status_code == 202, r.text
    assert r.json()["title"] == "A talk"
    assert wait_done(api, r.json()["id"])["status"] == "done"

    outside = tmp_path / "secret.wav"
    outside.write_bytes(speech_wav.read_bytes())
    os.symlink(outside, settings.data_path / "inbox" / "link.wav")
    for path in ("../secret.wav", str(outside), "inbox/../../secret.wav", "inbox/link.wav"):
        r = api.post("/episodes", data={"path": path})
        assert r.status_code == 400, (path, r.text)
        assert r.json()["error"]["code"] == "invalid_input"
        assert str(tmp_path) not in r.text  # no path leaks
    assert api.get("/episodes").json()["total"] == 1


@pytest.mark.parametrize(
    "name,payload,status,code",
    [
        ("empty.mp3", b"", 422, "empty_audio"),
        ("notes.mp3", b"this is a text file, not audio\n" * 100, 415, "unsupported_format"),
        ("noise.wav", random.Random(13).randbytes(30_000), 415, "unsupported_format"),  # the same noise each run
    ],
)
def test_bad_uploads_are_refused_and_store_nothing(api, settings, name, payload, status, code):
    r = api.post("/episodes", files={"file": (name, payload, "audio/mpeg")})
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == code
    assert api.get("/episodes").json()["total"] == 0
    assert list((settings.data_path / "incoming").iterdir()) == []
    assert not (settings.data_path / "audio").exists() or not any((settings.data_path / "audio").iterdir())
    assert api.get("/health").status_code == 200


def test_oversize_upload_is_413(api, settings, monkeypatch, speech_wav):
    monkeypatch.setenv("MEDIAFLOW_MAX_UPLOAD_MB", "1")
    config.get_settings.cache_clear()
    big = speech_wav.read_bytes() * 4  # over 1 MiB
    r = api.post("/episodes", files={"file": ("big.wav", big, "audio/wav")})
    assert r.status_code == 413 and r.json()["error"]["code"] == "input_too_large"
    assert api.get("/episodes").json()["total"] == 0


def test_either_file_or_path(api, speech_wav):
    for form in ({}, {"path": ""}):  # nothing, or `-F path=` with no file: the message says what is missing
        r = api.post("/episodes", data=form)
        assert r.status_code == 400 and r.json()["error"]["message"].startswith("send an audio `file`"), form
    r = api.post("/episodes", data={"path": "a.wav"}, files={"file": ("a.wav", speech_wav.read_bytes())})
    assert r.status_code == 400 and "not both" in r.json()["error"]["message"]


def test_unknown_episode_is_404_with_error_body(api):
    r = api.get("/episodes/doesnotexist")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = api.get("/episodes/doesnotexist/transcript")
    assert r.status_code == 404


def test_writes_need_the_api_key_when_one_is_set(api, monkeypatch, speech_wav):
    monkeypatch.setenv("MEDIAFLOW_API_KEY", "s3cret-key")
    config.get_settings.cache_clear()
    files = {"file": ("a.wav", speech_wav.read_bytes(), "audio/wav")}
    r = api.post("/episodes", files=files)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = api.post("/episodes", files=files, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    r = api.post("/episodes", files=files, headers={"Authorization": "Bearer s3cret-key"})
    assert r.status_code == 202
    assert api.get("/episodes").status_code == 200  # reads stay public
    wait_done(api, r.json()["id"])


def test_openapi_documents_the_endpoints(api):
    spec = api.get("/openapi.json").json()
    for path in ("/episodes", "/episodes/{episode_id}", "/episodes/{episode_id}/transcript", "/health"):
        assert path in spec["paths"]
    assert json.dumps(spec)  # serialisable


def test_chapters_in_every_format_and_as_tagged_mp3(api, settings, long_speech_wav):
    from mutagen.id3 import ID3

    from flows.episodes import process_episode

    eid = process_episode(str(long_speech_wav), title="Coffee, sleep and computers")
    ours = api.get(f"/episodes/{eid}/chapters").json()["chapters"]
    assert ours and ours[0]["start"] == 0
    pod = api.get(f"/episodes/{eid}/chapters", params={"format": "podcast"})
    assert pod.headers["content-type"].startswith("application/json+chapters")
    assert pod.json()["version"] == "1.2.0" and len(pod.json()["chapters"]) == len(ours)
    vtt = api.get(f"/episodes/{eid}/chapters", params={"format": "vtt"})
    assert vtt.text.startswith("WEBVTT") and vtt.text.count(" --> ") == len(ours)
    # under a minute of speech makes at most two chapters (none shorter than 20 s); YouTube needs three:
    # a clear refusal, not a broken list (the list itself: test_chapters.py)
    assert len(ours) < 3
    yt = api.get(f"/episodes/{eid}/chapters", params={"format": "youtube"})
    assert yt.status_code == 400 and yt.json()["error"] == {
        "code": "invalid_input", "message": f"YouTube chapters need at least 3 chapters; this episode has {len(ours)}"}
    mp3 = api.get(f"/episodes/{eid}/chapters.mp3")
    assert mp3.status_code == 200 and mp3.headers["content-type"] == "audio/mpeg"
    path = settings.data_path / "check.mp3"
    path.write_bytes(mp3.content)
    chaps = sorted(ID3(path).getall("CHAP"), key=lambda f: f.start_time)
    assert [str(c.sub_frames["TIT2"]) for c in chaps] == [c["title"] for c in ours]
    assert api.get("/episodes/nope/chapters").status_code == 404
