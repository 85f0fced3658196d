"""The process's model caches as the service's idle unloader sees them."""

import sys
import time
import types

from mediaflow import resources
from service.idle import IdleUnloader


def test_a_module_another_thread_is_still_importing_is_skipped(monkeypatch):
    # what the unloader's thread sees while the flow thread is half-way through `import mediaflow.llm`
    monkeypatch.setitem(sys.modules, "mediaflow.llm", types.ModuleType("mediaflow.llm"))
    assert "llm" not in resources.loaded_models()
    assert resources.model_calls() >= 0


def test_the_idle_watch_outlives_a_failing_round_and_unloads():
    resources.get_embedder()
    assert "embedder" in resources.loaded_models()
    rounds = []

    def busy() -> bool:
        rounds.append(1)
        if len(rounds) == 1:
            raise RuntimeError("the database is away for a moment")
        return False

    unloader = IdleUnloader(0.5, busy=busy)
    try:
        deadline = time.monotonic() + 60
        while unloader.unloaded_at is None and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        unloader.stop()
    assert len(rounds) > 1 and unloader.unloaded_at is not None
    assert "embedder" not in resources.loaded_models()
