"""A throwaway PostgreSQL server for tests: Debian's binaries, a temp dir, a free loopback port.

Import the fixtures into a test module (`from pg import postgres_server, postgres_url`). Without
the server binaries (`apt-get install postgresql`), psycopg, or a server that starts, the tests
that use them skip and say why.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest


def _bindir() -> Path | None:
    """The newest installed server's bin dir (Debian keeps them off PATH, under /usr/lib/postgresql)."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(Path(d).parent.name or 0))
    return Path(dirs[-1]) if dirs else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user(cmd: list[str]) -> list[str]:
    # The server refuses to run as root; as root, run it as Debian's `postgres` user instead.
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("running as root without `runuser` (util-linux): cannot start PostgreSQL as `postgres`")
    return [runuser, "-u", "postgres", "--", *cmd]


def _run(cmd: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    # cwd: the server user may not be allowed into the caller's working directory.
    done = subprocess.run(_as_server_user(cmd), capture_output=True, text=True, timeout=timeout, cwd=cwd)
    if done.returncode:
        raise RuntimeError(f"{Path(cmd[0]).name} failed ({done.returncode}): {(done.stderr or done.stdout)[-800:]}")
    return done


@pytest.fixture(scope="session")
def postgres_server():
    """Start a server for the whole session; yield its base URL (no database); stop and remove it."""
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'psycopg[binary]')")
    bindir = _bindir()
    if bindir is None or not (bindir / "initdb").exists():
        pytest.skip("PostgreSQL server binaries not found (Debian: apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="mediaflow-pg-"))
    if os.geteuid() == 0:
        try:
            shutil.chown(root, "postgres", "postgres")
        except (LookupError, PermissionError) as exc:
            shutil.rmtree(root, ignore_errors=True)
            pytest.skip(f"no `postgres` OS user to run the server as: {exc}")
    data, port = root / "data", _free_port()
    stop = [str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]
    try:
        # No fsync and no durable commits: the data is thrown away, and it makes tests fast.
        _run([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
              "--locale=C", "--no-sync"], root)
        opts = f"-h 127.0.0.1 -p {port} -k {root} -F -c synchronous_commit=off"
        _run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-o", opts,
              "-w", "-t", "90", "start"], root)
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
        log = root / "server.log"
        tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
        subprocess.run(_as_server_user(stop), capture_output=True, timeout=60, cwd=root)
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"PostgreSQL did not start: {exc} {tail}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_server_user(stop), capture_output=True, timeout=60, cwd=root)
        shutil.rmtree(root, ignore_errors=True)


def create_database(server_url: str, name: str | None = None) -> str:
    """Create an empty database on the server; return its SQLAlchemy URL."""
    import psycopg

    name = name or f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url.replace("postgresql+psycopg", "postgresql") + "/postgres",
                         autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server_url}/{name}"


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A fresh, empty database for one test."""
    return create_database(postgres_server)
