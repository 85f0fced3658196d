"""An episode's life through a real `mediaflow serve`: killed mid-episode and restarted, interrupted,
stopped; uploaded ten times at once. Nothing is left stuck, duplicated or running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from conftest import ffmpeg, free_port

BIN = Path(sys.executable).with_name("mediaflow")


def _as_from_a_terminal() -> None:
    # A shell starts background jobs with SIGINT ignored, and a test run may be one: the command under
    # test gets Ctrl-C as a terminal would deliver it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def long_episode(long_speech_wav, tmp_path_factory) -> Path:
    """About 70 s of speech: processing takes long enough to be interrupted (the kill comes the moment the
    episode is `processing`), and the restarted server's whole run stays short."""
    out = tmp_path_factory.mktemp("lifecycle") / "long.mp3"
    ffmpeg("-i", str(long_speech_wav), "-ac", "1", "-b:a", "64k", str(out))
    return out


_started: list[psutil.Popen] = []


@pytest.fixture(autouse=True)
def _no_server_outlives_its_test():
    """A test that fails half-way leaves no server behind (its Prefect API and flows with it)."""
    yield
    while _started:
        proc = _started.pop()
        if proc.is_running():
            tree = [proc, *proc.children(recursive=True)]
            for p in tree:
                try:
                    p.kill()
                except psutil.NoSuchProcess:  # gone on its own meanwhile
                    pass
            psutil.wait_procs(tree, timeout=20)


class Serve:
    """`mediaflow serve` as a user starts it, on a data dir of its own."""

    def __init__(self, data: Path, **settings: str):
        self.port = free_port()
        data.mkdir(parents=True, exist_ok=True)
        # a file, not a pipe nobody reads while the server runs: a full pipe would stall its logging
        self.log = data.parent / f"serve-{self.port}.log"
        env = {**os.environ, "MEDIAFLOW_DATA_DIR": str(data), "PREFECT_HOME": str(data / "prefect"),
               "MEDIAFLOW_LEASE_S": "4", **{f"MEDIAFLOW_{k.upper()}": v for k, v in settings.items()}}
        env.pop("PREFECT_API_URL", None)
        with open(self.log, "wb") as err:
            self.proc = psutil.Popen([str(BIN), "serve", "--port", str(self.port)], env=env,
                                     preexec_fn=_as_from_a_terminal, stdout=subprocess.DEVNULL, stderr=err)
        _started.append(self.proc)
        self.url = f"http://127.0.0.1:{self.port}"
        self.client = httpx.Client(base_url=self.url, timeout=60)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if self.client.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                assert self.proc.poll() is None, self.log.read_text(errors="replace")[-2000:]
            time.sleep(0.2)
        raise AssertionError("mediaflow serve did not answer /health")

    def tree(self) -> list[psutil.Process]:
        """The server's descendants (its Prefect API among them)."""
        return self.proc.children(recursive=True)

    def status(self, episode_id: str) -> dict:
        return self.client.get(f"/episodes/{episode_id}").json()

    def wait_for(self, episode_id: str, statuses: tuple[str, ...], timeout: float = 240) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ep = self.status(episode_id)
            if ep["status"] in statuses:
                return ep
            time.sleep(0.1)
        raise AssertionError(f"episode {episode_id} still {ep['status']}, wanted {statuses}")

    def upload(self, path: Path) -> str:
        with open(path, "rb") as f:
            r = self.client.post("/episodes", files={"file": (path.name, f, "audio/mpeg")})
        assert r.status_code in (200, 202), r.text
        return r.json()["id"]

    def stop(self, sig: int) -> float:
        """Send `sig`; seconds until the process was gone."""
        children = self.tree()
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        self.proc.wait(timeout=60)
        took = time.monotonic() - t0
        self.client.close()
        gone, alive = psutil.wait_procs(children, timeout=20)
        assert alive == [], f"left running after {signal.Signals(sig).name}: {[p.cmdline() for p in alive]}"
        return took


def _one_whole_episode(data: Path, episode_id: str) -> None:
    import sqlite3

    db = sqlite3.connect(data / "mediaflow.db")
    try:
        assert db.execute("select count(*) from episodes").fetchone() == (1,)
        assert db.execute("select count(*) from transcripts where episode_id = ?", (episode_id,)).fetchone() == (1,)
        assert db.execute("select status, error from episodes").fetchone() == ("done", None)
    finally:
        db.close()
    assert [p.name for p in (data / "audio").iterdir()] == [f"{episode_id}.mp3"]
    assert not list(data.rglob(".*.tmp")) and not any((data / "incoming").iterdir())


def test_a_server_killed_mid_transcription_resumes_the_episode_after_a_restart(tmp_path, long_episode):
    data = tmp_path / "data"
    first = Serve(data)
    episode_id = first.upload(long_episode)
    first.wait_for(episode_id, ("processing",))
    assert any("prefect" in " ".join(p.cmdline()) for p in first.tree())  # its Prefect API, a child
    first.stop(signal.SIGKILL)  # and that child went with it

    second = Serve(data)  # nobody uploads again: the lapsed lease is enough
    ep = second.wait_for(episode_id, ("done", "failed"))
    assert ep["status"] == "done", ep
    assert second.client.get(f"/episodes/{episode_id}/chapters").status_code == 200
    second.stop(signal.SIGTERM)
    _one_whole_episode(data, episode_id)


def test_ctrl_c_mid_episode_exits_at_once_and_leaves_it_to_be_resumed(tmp_path, long_episode):
    data = tmp_path / "data"
    server = Serve(data)
    episode_id = server.upload(long_episode)
    server.wait_for(episode_id, ("processing",))
    took = server.stop(signal.SIGINT)
    assert took < 10
    assert server.proc.returncode == 0
    import sqlite3

    db = sqlite3.connect(data / "mediaflow.db")
    status, error, owner = db.execute("select status, error, lease_owner from episodes").fetchone()
    db.close()
    assert (status, error, owner) == ("processing", None, None)  # not failed: handed back for the next start


def test_ten_concurrent_uploads_of_the_same_bytes_start_one_flow_run(tmp_path, speech_mp3):
    data = tmp_path / "data"
    server = Serve(data)
    ids, barrier = [], threading.Barrier(10)

    def upload() -> None:
        barrier.wait()
        with httpx.Client(base_url=server.url, timeout=60) as c, open(speech_mp3, "rb") as f:
            r = c.post("/episodes", files={"file": ("same.mp3", f, "audio/mpeg")})
        ids.append((r.status_code, r.json().get("id")))

    threads = [threading.Thread(target=upload) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({i for _, i in ids}) == 1 and all(code in (200, 202) for code, _ in ids), ids
    episode_id = ids[0][1]
    assert server.wait_for(episode_id, ("done", "failed"))["status"] == "done"
    metrics = server.client.get("/metrics").text
    started = [line for line in metrics.splitlines()
               if line.startswith("mediaflow_flow_runs_total") and 'state="started"' in line]
    assert started == ['mediaflow_flow_runs_total{flow="process-episode",state="started"} 1.0']
    server.stop(signal.SIGTERM)
    _one_whole_episode(data, episode_id)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_batch_leaves_no_process_behind(tmp_path, long_episode, sig):
    env = {**os.environ, "MEDIAFLOW_DATA_DIR": str(tmp_path / "data"), "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    proc = psutil.Popen([str(BIN), "batch", str(long_episode)], env=env, preexec_fn=_as_from_a_terminal,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not any("prefect" in " ".join(c.cmdline()) for c in proc.children(recursive=True)):
        assert time.monotonic() < deadline and proc.poll() is None, "no Prefect API child appeared"
        time.sleep(0.2)
    time.sleep(1.0)
    children = proc.children(recursive=True)
    t0 = time.monotonic()
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert time.monotonic() - t0 < 10
    gone, alive = psutil.wait_procs(children, timeout=20)
    assert alive == [], [p.cmdline() for p in alive]


def test_idle_models_are_unloaded_and_come_back_on_the_next_request(tmp_path, speech_mp3):
    server = Serve(tmp_path / "data", models_idle_s="3")
    assert server.client.get("/health").json()["models_loaded"] == []  # nothing loaded before it is needed
    episode_id = server.upload(speech_mp3)
    assert server.wait_for(episode_id, ("done", "failed"))["status"] == "done"
    deadline = time.monotonic() + 120
    while (health := server.client.get("/health").json())["models_unloaded_at"] is None:
        assert time.monotonic() < deadline, health
        time.sleep(0.5)
    assert health["models_loaded"] == [] and health["models_idle_s"] == 3
    r = server.client.post("/tts", json={"text": "Back again.", "voice": "hibari", "format": "wav", "stream": False})
    assert r.status_code == 200 and r.content[:4] == b"RIFF"
    assert "voices" in server.client.get("/health").json()["models_loaded"]
    server.stop(signal.SIGTERM)
