"""The house rules that keep the arrows pointing one way:

    the command (cli/), service/, flows/  →  mediaflow/  →  models/

and no package imports from bench/ or tests/. Imports inside functions count as much as those at
the top: a lazy import is still an arrow.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mediaflow", "models", "flows", "service", "cli")
# What each folder may never import (prefixes of module names).
FORBIDDEN = {
    "mediaflow": ("prefect", "fastapi", "starlette", "uvicorn", "flows", "service", "cli", "bench", "tests",
                  # the student's training code: the library only loads the shipped model
                  "models.tts_student.train", "models.tts_student.data", "models.tts_student.corpus"),
    "models": ("mediaflow", "flows", "service", "cli", "bench", "tests", "prefect", "fastapi"),
    "flows": ("service", "cli", "bench", "tests", "fastapi", "starlette", "uvicorn"),
    "service": ("cli", "bench", "tests"),
    "cli": ("bench", "tests"),
}


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import in the file, top-level or not, relative ones resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{a.name}") for a in node.names]  # `from pkg import module`
    return found


def test_each_folder_imports_only_downstream():
    offenders = []
    for name, path in _modules().items():
        banned = FORBIDDEN[name.split(".")[0]]
        for line, module in _imports(name, path):
            if any(module == b or module.startswith(b + ".") for b in banned):
                offenders.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert sorted(set(offenders)) == []


def test_the_library_reads_no_file_of_bench_or_docs():
    offenders = []
    for path in (ROOT / "mediaflow").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if node.value.strip("/") in ("bench", "docs") or node.value.startswith(("bench/", "docs/")):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    assert offenders == []


def test_no_import_circles():
    modules = _modules()
    graph = {name: sorted({m for _, m in _imports(name, path) if m in modules and m != name})
             for name, path in modules.items()}
    # A package's __init__ importing its own submodules is how packages work, not a circle.
    graph = {n: [m for m in deps if not m.startswith(n + ".")] for n, deps in graph.items()}
    circles, state = [], {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for dep in graph[node]:
            if state.get(dep) == "open":
                circles.append(" → ".join(trail[trail.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, trail + [dep])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert circles == []


def test_importing_the_library_loads_neither_prefect_nor_fastapi():
    code = (
        "import sys, mediaflow.pipeline, mediaflow.asr, mediaflow.audio, mediaflow.store, mediaflow.files, "
        "mediaflow.lease, mediaflow.resources, mediaflow.catalogue, mediaflow.narration;"
        "print(sorted(m for m in ('prefect', 'fastapi') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_console_script_lives_outside_the_library():
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["mediaflow"].split(":")[0].split(".")[0] == "cli"
    assert not (ROOT / "mediaflow" / "cli.py").exists()
