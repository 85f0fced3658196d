"""Shared fixtures. Test audio is made here: speech by the Piper voice, tones and noise by numpy."""

from __future__ import annotations

import os
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

# Before anything imports Prefect: its state goes to a throwaway home for the whole run.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="mediaflow-prefect-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"  # the INFO line at exit hits a closed capture stream
os.environ.pop("PREFECT_API_URL", None)
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "180"  # 2 shared cores start it slowly
os.environ.setdefault("MEDIAFLOW_DATA_DIR", tempfile.mkdtemp(prefix="mediaflow-data-"))
# Episodes processed by the suite get keyphrase titles: the language model costs seconds per chapter on
# two cores. tests/test_llm.py runs the model itself.
os.environ.setdefault("MEDIAFLOW_CHAPTER_TITLES", "extractive")
os.environ.setdefault("MEDIAFLOW_EXPLANATIONS", "template")  # likewise: a test that wants the model says so

from mediaflow import config  # noqa: E402
from mediaflow.audio import encode  # noqa: E402

SPEECH_TEXT = (
    "The volcano erupted at dawn, covering the village in grey ash. "
    "Scientists measured the lava flow with drones and thermal cameras. "
    "Nobody was hurt, but the harvest was lost."
)

LONG_PARAGRAPHS = [
    "Coffee was first roasted and brewed in Yemen, where monks drank it to stay awake during night prayers.",
    "Coffee houses spread to Cairo and Istanbul, and then to London, where merchants read the news and traded.",
    "Today most coffee beans are grown in Brazil, Vietnam and Colombia, close to the equator.",
    "Sleep moves memories from the hippocampus into the cortex, so students who sleep after studying remember more.",
    "A network of channels in the brain flushes out waste proteins at night, which may protect against disease.",
    "Charles Babbage designed the Analytical Engine, a machine of gears and punched cards, in the eighteen thirties.",
    "Ada Lovelace wrote what many call the first computer program for it, long before electronics existed.",
    "The transistor, invented in 1947, made computers smaller, faster and far more reliable than vacuum tubes.",
]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(timeout: float = 20.0) -> Iterator[str]:
    """The app on a real uvicorn on loopback, in a thread; yields its base URL."""
    import threading
    import time

    import uvicorn

    from service.app import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + timeout
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@contextmanager
def serving(data_dir, **env: str | None) -> Iterator[str]:
    """`running_server` over `data_dir` with no API key and these settings (None: unset), the settings cache
    cleared on the way in and out; yields its base URL (for a module's one server)."""
    from mediaflow import config

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDIAFLOW_DATA_DIR", str(data_dir))
        mp.delenv("MEDIAFLOW_API_KEY", raising=False)
        for k, v in env.items():
            mp.delenv(k, raising=False) if v is None else mp.setenv(k, v)
        config.get_settings.cache_clear()
        try:
            with running_server() as url:
                yield url
        finally:
            config.get_settings.cache_clear()


@pytest.fixture
def api(settings):
    """An httpx client on a fresh server over the `settings` data dir."""
    import httpx

    with running_server() as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def wait_done(api, episode_id: str, timeout: float = 240) -> dict:
    """Poll the API until the episode's flow run has finished, either way."""
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        ep = api.get(f"/episodes/{episode_id}").json()
        if ep["status"] in ("done", "failed"):
            return ep
        time.sleep(0.5)
    raise AssertionError(f"episode {episode_id} still {ep['status']} after {timeout} s")


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", *args], check=True)


@pytest.fixture
def settings(tmp_path, monkeypatch):
    """Fresh settings on an empty data dir (its own SQLite database)."""
    monkeypatch.setenv("MEDIAFLOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MEDIAFLOW_API_KEY", raising=False)
    config.get_settings.cache_clear()
    yield config.get_settings()
    config.get_settings.cache_clear()


@pytest.fixture
def env(monkeypatch):
    """Change a setting for one test: set the variable, and a running server reads it on the next request."""
    def set_env(name: str, value: str) -> None:
        monkeypatch.setenv(name, value)
        config.get_settings.cache_clear()
    yield set_env
    monkeypatch.undo()
    config.get_settings.cache_clear()


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def speech_wav(media_dir) -> Path:
    """About 12 s of real synthetic speech (Piper joe) of `SPEECH_TEXT`, 22.05 kHz mono WAV."""
    from mediaflow.tts.piper import PiperSpeaker

    sp = PiperSpeaker()
    path = media_dir / "speech.wav"
    path.write_bytes(encode(sp.speak(SPEECH_TEXT), sp.sample_rate, "wav"))
    return path


@pytest.fixture(scope="session")
def long_speech_wav(media_dir) -> Path:
    """About 70 s of speech in eight paragraphs with pauses between them."""
    from mediaflow.tts.piper import PiperSpeaker

    sp = PiperSpeaker()
    path = media_dir / "long.wav"
    path.write_bytes(encode(sp.speak_paragraphs(LONG_PARAGRAPHS), sp.sample_rate, "wav"))
    return path


@pytest.fixture(scope="session")
def speech_mp3(media_dir, speech_wav) -> Path:
    path = media_dir / "speech.mp3"
    ffmpeg("-i", str(speech_wav), "-ac", "2", "-ar", "44100", "-b:a", "96k", str(path))
    return path


def tone(seconds: float, freq: float = 440.0, sr: int = 16000, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def wer(reference: str, hypothesis: str) -> float:
    import re

    import jiwer

    def norm(s: str) -> str:
        s = s.lower().replace("-", " ")
        return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9' ]", " ", s)).strip()

    return jiwer.wer(norm(reference), norm(hypothesis))


# -- CI does not pass by skipping ----------------------------------------------------------------
# The system dependencies `make test` installs skip their tests, with the reason, where they are
# missing: Debian's PostgreSQL (the fixtures of tests/pg.py) and Chromium (tests/test_web.py's browser).
# Under CI (CI=true; .ci/run sets it) a skip raised there is an error instead, so a missing or failed
# install cannot pass as green.
# the files those skips are raised in (the language model is a Python package, required under CI too)
SYSTEM_DEP_SKIPS = {"pg.py": "PostgreSQL", "test_web.py": "Chromium", "test_llm.py": "the language model",
                    "test_languages.py": "espeak-ng"}


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.skipped and under_ci() and call.excinfo is not None and not hasattr(report, "wasxfail"):
        raised_in = {Path(str(entry.path)).name for entry in call.excinfo.traceback}
        needs = [need for name, need in SYSTEM_DEP_SKIPS.items() if name in raised_in]
        if needs:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            report.outcome = "failed"
            report.longrepr = f"CI=true: {needs[0]} is required under CI, and this test would have skipped: {reason}"
    return report


def pytest_collection_modifyitems(items):
    # schemathesis names each operation's item `test[GET /path]` but gives them all the test function's
    # node id; pytest-xdist keys items by node id and would run one of them. The name makes it unique.
    for item in items:
        if "[" in item.name and not item.nodeid.endswith("]"):  # pytest 9 keeps the id parsed in `_id`
            item._id = type(item._id).parse(f"{item.nodeid.rpartition('::')[0]}::{item.name}")
