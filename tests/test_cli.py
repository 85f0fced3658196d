"""The `mediaflow` command as a user runs it: a subprocess, stdout for results, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import SPEECH_TEXT, wer

BIN = Path(sys.executable).with_name("mediaflow")


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_transcribe_writes_podcast_json_to_stdout(speech_mp3):
    r = run("transcribe", str(speech_mp3), "--format", "podcast")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert wer(SPEECH_TEXT, " ".join(s["body"] for s in doc["segments"])) <= 0.1
    assert all(s["startTime"] < s["endTime"] for s in doc["segments"])


def test_transcribe_srt_and_text(speech_wav):
    r = run("transcribe", str(speech_wav), "--format", "srt")
    assert r.returncode == 0 and r.stdout.startswith("1\n00:00:")
    r = run("transcribe", str(speech_wav), "--format", "text")
    assert "volcano" in r.stdout.lower()


def test_bad_input_exits_non_zero_with_one_line(tmp_path):
    bad = tmp_path / "x.mp3"
    bad.write_text("not audio")
    r = run("transcribe", str(bad))
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert lines == ["mediaflow: error: x.mp3: not a recognised audio or video file"]
    assert r.stdout == ""
    r = run("transcribe", str(tmp_path / "missing.wav"))
    assert r.returncode == 2 and "no such file" in r.stderr


def test_wrong_parameters_are_refused(speech_wav):
    r = run("transcribe", str(speech_wav), "--format", "docx")
    assert r.returncode == 2 and "invalid choice" in r.stderr
    r = run("transcribe", str(speech_wav), "--model", "/nonexistent/model")
    assert r.returncode == 2 and "CTranslate2" in r.stderr


def test_process_stores_and_lists_the_episode(tmp_path, speech_wav):
    env = {"MEDIAFLOW_DATA_DIR": str(tmp_path / "data"), "PREFECT_HOME": str(tmp_path / "prefect")}
    r = run("process", str(speech_wav), "--title", "Volcano news", env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout)
    assert summary["status"] == "done" and summary["title"] == "Volcano news"
    assert summary["transcript"]["words"] >= 20
    r = run("episodes", env=env)
    assert summary["id"] in r.stdout and "1 episode(s)" in r.stderr


def test_chapters_from_a_podcasting20_transcript_json(tmp_path):
    from test_chapters import TOPICS

    segs, t = [], 0.0
    for sents in TOPICS.values():
        for s in sents:
            segs.append({"startTime": t, "endTime": t + 5.6, "body": s})
            t += 6.0
    src = tmp_path / "episode.transcript.json"
    src.write_text(json.dumps({"version": "1.0.0", "segments": segs}))
    r = run("chapters", str(src), "--format", "podcast", "--title", "Four topics")
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads(r.stdout)
    assert doc["version"] == "1.2.0" and doc["title"] == "Four topics"
    starts = [c["startTime"] for c in doc["chapters"]]
    assert starts[0] == 0 and starts == sorted(starts) and 3 <= len(starts) <= 8
    r = run("chapters", str(src), "--format", "youtube")
    assert r.returncode == 0 and r.stdout.startswith("00:00 ")
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "a transcript"}')
    r = run("chapters", str(bad))
    assert r.returncode == 2 and "segments" in r.stderr


def test_serve_help_names_the_flags_and_settings_that_matter():
    r = run("serve", "--help")
    assert r.returncode == 0
    for word in ("--host", "--port", "MEDIAFLOW_DATA_DIR", "MEDIAFLOW_API_KEY", "MEDIAFLOW_PORT", "PREFECT_API_URL"):
        assert word in r.stdout, word


def test_batch_feeds_and_deployments(tmp_path, speech_wav):
    env = {"MEDIAFLOW_DATA_DIR": str(tmp_path / "data"), "PREFECT_HOME": str(tmp_path / "prefect")}
    bad = tmp_path / "broken.mp3"
    bad.write_bytes(b"\x00" * 3000)
    r = run("batch", str(speech_wav), str(bad), env=env)
    assert r.returncode == 2 and len(r.stdout.split()) == 2 and r.stdout.split()[1] == str(speech_wav)
    # one line for the bad file, naming it once, and no Prefect log or traceback (a bar may share stderr)
    said = [ln.split("\r")[-1] for ln in r.stderr.splitlines() if "mediaflow:" in ln]
    assert len(said) == 1 and said[0].startswith("mediaflow: ") and said[0].count("broken.mp3") == 1, r.stderr
    assert "Traceback" not in r.stderr and "Task run" not in r.stderr and "Finished in state" not in r.stderr
    r = run("feeds", "add", "file:///etc/passwd", env=env)
    assert r.returncode == 2 and "http" in r.stderr
    r = run("feeds", "add", "http://169.254.169.254/latest", env=env)
    assert r.returncode == 2 and "private or local" in r.stderr

    from flows.deploy import SCHEDULES, build_deployments

    deployments = {d.name: d for d in build_deployments()}
    assert set(deployments) == set(SCHEDULES) == {"poll-feeds", "process-folder", "refresh-semantic-ids",
                                                  "narrate-recommendations"}
    for name, d in deployments.items():
        assert d.schedules[0].schedule.cron == SCHEDULES[name] and d.concurrency_limit == 1
