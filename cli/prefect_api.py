"""The Prefect API the command's flows report to: a child process that never outlives the command.

Prefect's own ephemeral API server is stopped by an atexit hook, which SIGTERM and SIGKILL skip, so
it was left running (~250 MB, a port) after every killed `mediaflow serve`. The command starts the
same server itself, asks the kernel to end it when the command's process dies (PR_SET_PDEATHSIG,
whatever the cause), and points PREFECT_API_URL at it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child between fork and exec; the signal fires when the thread that forked it exits,
    # so start the server from the main thread.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrefectAPI:
    """`with PrefectAPI(): ...` — a Prefect API on loopback for as long as the block (and the process) lives.

    `ui=True` runs `prefect server start` (UI and the schedulers that deployments need); otherwise the
    bare API that Prefect's ephemeral mode runs. Does nothing when PREFECT_API_URL is already set.
    """

    def __init__(self, port: int | None = None, ui: bool = False):
        self.port, self.ui = port, ui
        self.process: subprocess.Popen | None = None
        self.url = os.environ.get("PREFECT_API_URL")
        self._configured = self.url is not None

    def start(self) -> str | None:
        if self.url:
            return self.url
        self.port = self.port or free_port()
        if self.ui:
            args = ["-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port)]
            env = dict(os.environ)
        else:
            args = ["-m", "uvicorn", "--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1",
                    "--port", str(self.port), "--log-level", "error", "--lifespan", "on"]
            env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1"}
        self.process = subprocess.Popen(
            [sys.executable, *args], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        self.url = f"http://127.0.0.1:{self.port}/api"
        os.environ["PREFECT_API_URL"] = self.url
        return self.url

    def wait_ready(self, timeout_s: float = 180.0) -> None:
        """Block until the API answers; a clear error if it exits or never does."""
        from flows import wait_for_api
        from mediaflow.errors import MediaflowError

        if wait_for_api(timeout_s, self.url, alive=lambda: self.process is None or self.process.poll() is None):
            return
        if self.process is not None and self.process.poll() is not None:
            raise MediaflowError(f"the Prefect API did not start (exit code {self.process.returncode}); "
                                 f"is port {self.port} free?")
        raise MediaflowError(f"the Prefect API at {self.url} did not answer within {timeout_s:.0f} s")

    def stop(self) -> None:
        if not self._configured:  # a caller in the same process (a test) must not be left pointing at it
            os.environ.pop("PREFECT_API_URL", None)
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> PrefectAPI:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
