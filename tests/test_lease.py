"""Leases: a process's renewer keeps its episodes' holds alive, and stops when told."""

from __future__ import annotations

import time

from mediaflow import lease, resources


def _episode(store):
    h = "b" * 64
    return store.add_episode(content_hash=h, title="Ep", source_name="ep.mp3", audio_path=f"audio/{h[:16]}.mp3",
                             size_bytes=10, duration_s=1.0, sample_rate=16000, channels=1, codec="mp3",
                             container="mp3")


def test_the_renewer_extends_a_held_lease_until_it_is_stopped(settings):
    s = settings.model_copy(update={"lease_s": 2.0})  # a beat every 0.5 s
    store = resources.get_store(s.db_url)
    try:
        ep = _episode(store)
        assert lease.take(ep.id, s)
        first = store.get_episode(ep.id).lease_until
        deadline = time.monotonic() + 30
        while store.get_episode(ep.id).lease_until == first and time.monotonic() < deadline:
            time.sleep(0.1)
        assert store.get_episode(ep.id).lease_until > first  # renewed by the thread, not by us

        assert lease.stop_renewing(s.db_url) is True
        assert lease.stop_renewing(s.db_url) is False  # nothing left to stop
        stopped = store.get_episode(ep.id).lease_until
        time.sleep(1.5)  # three beats' worth: a live renewer would have moved it
        assert store.get_episode(ep.id).lease_until == stopped

        assert lease.take(ep.id, s)  # the same process takes it again: a new renewer starts
        assert lease.stop_renewing(s.db_url) is True
    finally:
        lease.stop_renewing(s.db_url)
        store.engine.dispose()
        resources.get_store.cache_clear()
