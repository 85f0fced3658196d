"""Prefect flows over the mediaflow library.

Embedded defaults, set before Prefect is imported: Prefect keeps its state in the data dir, and
its telemetry (which needs the network, and contends for its SQLite file) is off.
"""

import os

from mediaflow.config import get_settings

_home = get_settings().data_path / "prefect"
_home.mkdir(parents=True, exist_ok=True)  # Prefect warns, and keeps no state, when it cannot make it
os.environ.setdefault("PREFECT_HOME", str(_home))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The embedded server needs 8-15 s to start on 2 busy cores; Prefect's default 20 s wait is too tight.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def wait_for_api(timeout_s: float = 180.0, url: str | None = None, alive=lambda: True) -> bool:
    """Block until the Prefect API at `url` (default PREFECT_API_URL) answers; True once it does,
    False when `alive()` turns false or the time is up. With no URL (Prefect's ephemeral API, which
    Prefect starts and waits for itself) there is nothing to wait for."""
    import time
    import urllib.request

    url = url or os.environ.get("PREFECT_API_URL")
    deadline = time.monotonic() + timeout_s
    while url:
        try:
            urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=2)
            return True
        except OSError:
            if not alive() or time.monotonic() > deadline:
                return False
            time.sleep(0.5)
    return True
