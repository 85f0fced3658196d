"""Leases: how a run that died is told from one still working, so no episode stays stuck.

A run takes the lease of each episode it works on and a daemon thread renews every lease this
process holds. When the process dies (SIGKILL, reboot) its leases run out; `orphans` then lists the
episodes left `pending` or `processing`, and the service picks them up again. Taking a lease is an
atomic update, so two processes never work on one episode at once.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import datetime, timedelta, timezone

from mediaflow.config import Settings
from mediaflow.errors import Busy
from mediaflow.resources import get_store
from mediaflow.store import Episode

log = logging.getLogger("mediaflow.lease")

OWNER = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"  # this process
_renewers: dict[str, tuple[threading.Event, threading.Thread]] = {}  # database URL → its renewer's stop signal, thread
_lock = threading.Lock()


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def take(episode_id: str, settings: Settings, owner: str = OWNER) -> bool:
    """Hold the episode's lease for `owner` (False: a live run elsewhere holds it).

    A flow's worker processes take leases for the flow's process (`owner`), which renews them.
    """
    keep_renewing(settings)
    store, until = get_store(settings.db_url), _now() + timedelta(seconds=settings.lease_s)
    if store.take_lease(episode_id, owner, until):
        return True
    holder = store.lease_owner(episode_id)
    # A holder on this machine whose process is gone died (a killed `mediaflow process`, say): no need
    # to wait for its lease to run out before a re-run takes over.
    return bool(holder) and _died_here(holder) and store.take_lease(episode_id, owner, until, dead_owner=holder)


def hold(episode_id: str, settings: Settings, owner: str = OWNER) -> None:
    """`take`, or `Busy` when another live run holds the episode."""
    if not take(episode_id, settings, owner):
        raise Busy(f"episode {episode_id} is being processed by another run; it will be picked up when that "
                   "finishes or dies")


def release(episode_id: str, settings: Settings, owner: str = OWNER) -> None:
    get_store(settings.db_url).release_lease(episode_id, owner)


def _died_here(holder: str) -> bool:
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:  # a killed child its parent has not reaped yet is a zombie: dead all the same
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return False


def orphans(settings: Settings) -> list[Episode]:
    """Episodes whose run died: unfinished, no live lease, and untouched for a lease's length."""
    return get_store(settings.db_url).orphans(_now() - timedelta(seconds=settings.lease_s))


def keep_renewing(settings: Settings) -> None:
    """Start (once per process and database) the thread that renews this process's leases."""
    url, every, stop = settings.db_url, settings.lease_s / 4, threading.Event()

    def renew() -> None:
        while not stop.wait(every):
            try:
                get_store(url).renew_leases(OWNER, _now() + timedelta(seconds=settings.lease_s))
            except Exception as e:  # the database may be briefly away; the next beat tries again
                log.warning("could not renew leases: %s", str(e).splitlines()[0] if str(e) else type(e).__name__)

    with _lock:
        if url in _renewers:
            return
        thread = threading.Thread(target=renew, name="mediaflow-lease", daemon=True)
        _renewers[url] = (stop, thread)
        thread.start()


def stop_renewing(db_url: str, wait_s: float = 5.0) -> bool:
    """Stop this process's renewer for that database (its leases then run out), e.g. before the database goes
    away for good; the next `take` there starts a new one. True if a renewer was running and has ended."""
    with _lock:
        found = _renewers.pop(db_url, None)
    if found is None:
        return False
    stop, thread = found
    stop.set()
    thread.join(wait_s)  # a beat already under way finishes first (or its connection attempt times out)
    return not thread.is_alive()
