"""Where mediaflow keeps what it builds once from packaged models: joined weights, voice packs, packed
tables. Light on imports on purpose: the speaking path uses it."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """`$XDG_CACHE_HOME/mediaflow`, else ~/.cache/mediaflow."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mediaflow"


def cache_dir(name: str, env: str) -> Path:
    """The folder named by the environment variable `env` when set, else `cache_root() / name`."""
    override = os.environ.get(env)
    return Path(override).expanduser() if override else cache_root() / name
