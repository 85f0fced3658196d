"""The house rules that keep the arrows pointing one way."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_library_never_imports_prefect_or_fastapi():
    offenders = []
    for path in (ROOT / "mediaflow").rglob("*.py"):
        if path.name == "cli.py":  # the command is a shell; it imports flows/service lazily
            continue
        for line in path.read_text().splitlines():
            if re.match(r"\s*(from|import)\s+(prefect|fastapi|starlette|uvicorn|flows|service)\b", line):
                offenders.append(f"{path.relative_to(ROOT)}: {line.strip()}")
    assert offenders == []


def test_importing_the_library_loads_neither():
    code = (
        "import sys, mediaflow.pipeline, mediaflow.asr, mediaflow.audio, mediaflow.store, mediaflow.cli;"
        "print(sorted(m for m in ('prefect', 'fastapi') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
