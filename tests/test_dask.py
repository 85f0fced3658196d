"""process_batch on a real Dask cluster: episodes run on its two worker processes, each loading Whisper
at most once, and a corrupt file fails alone. Which worker takes which episode is the scheduler's choice
(it follows the machine's speed and load), so it is not asserted; throughput is bench/throughput.py's."""

from __future__ import annotations

import os
import random

import pytest

pytest.importorskip("prefect_dask", reason="prefect-dask is not installed")

from conftest import LONG_PARAGRAPHS, wer  # noqa: E402
from mediaflow import asr, config  # noqa: E402
from mediaflow.audio import encode  # noqa: E402
from mediaflow.resources import get_store  # noqa: E402

TEXTS = LONG_PARAGRAPHS[:3]  # about 6 s of speech each


@pytest.fixture(scope="module")
def batch_files(tmp_path_factory) -> list[tuple[str, str]]:
    """(path, spoken text) of three short Piper episodes."""
    from mediaflow.tts.piper import PiperSpeaker

    sp = PiperSpeaker()
    folder = tmp_path_factory.mktemp("batch")
    out = []
    for i, text in enumerate(TEXTS):
        path = folder / f"episode-{i}.wav"
        path.write_bytes(encode(sp.speak(text), sp.sample_rate, "wav"))
        out.append((str(path), text))
    return out


@pytest.fixture
def dask_client(settings, monkeypatch):
    """A `distributed.LocalCluster` of two worker processes (one thread each) that the flow reaches
    by address, so the test can ask the workers themselves what they loaded."""
    from distributed import Client, LocalCluster
    from prefect import get_client

    # Workers inherit this environment: the data dir from `settings`, and the URL of this process's
    # Prefect API (started here if no test has yet), to which they report their task runs.
    monkeypatch.setenv("PREFECT_API_URL", str(get_client(sync_client=True).api_url))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      env={"MEDIAFLOW_ASR_THREADS": "1", "OMP_NUM_THREADS": "1"}) as cluster, \
            Client(cluster) as client:
        monkeypatch.setenv("MEDIAFLOW_TASK_RUNNER", "dask")
        monkeypatch.setenv("MEDIAFLOW_DASK_ADDRESS", cluster.scheduler_address)
        config.get_settings.cache_clear()
        yield client
    config.get_settings.cache_clear()


def test_a_batch_runs_on_the_dask_workers_each_loading_whisper_once(dask_client, batch_files, tmp_path, capsys):
    from flows.episodes import process_batch

    corrupt = tmp_path / "corrupt.mp3"
    corrupt.write_bytes(random.Random(7).randbytes(20_000))  # the same bytes each run
    sources = [p for p, _ in batch_files]
    sources.insert(1, str(corrupt))
    loads_here = asr._load.cache_info().misses

    result = process_batch(sources)

    assert list(result["failed"]) == [str(corrupt)]  # one bad file fails alone
    assert "not a recognised audio" in result["failed"][str(corrupt)]
    store = get_store(config.get_settings().db_url)
    assert store.count() == 3
    for path, text in batch_files:
        episode_id = result["done"][path]
        assert store.get_episode(episode_id).status == "done"
        # tiny.en on one TTS sentence; with one thread per worker it hears 'Coffee houses' as 'Coffee has a'
        assert wer(text, store.get_transcript(episode_id).text) <= 0.25
        assert store.get_chapters(episode_id)[0] and store.get_features(episode_id).terms

    workers = set(dask_client.run(os.getpid).values())
    steps = result["steps"].values()
    assert len(workers) == 2 and os.getpid() not in workers
    # every step of every episode ran on a worker of the cluster, not in the flow's process
    from mediaflow.pipeline import STEPS

    assert all(set(s.pids) == {"ingest", *STEPS} for s in steps)  # every step of the chain, timed
    assert all(pid in workers for s in steps for pid in s.pids.values())
    # Whisper loaded at most once in each worker process, and never in the flow's process.
    loads = dask_client.run(asr._load.cache_info)
    assert all(info.misses <= 1 for info in loads.values()), loads
    assert asr._load.cache_info().misses == loads_here

    again = process_batch(sources)  # same bytes, same episodes: nothing duplicated or redone
    assert again["done"] == result["done"] and list(again["failed"]) == [str(corrupt)]
    assert store.count() == 3
    assert not any(s.redone for s in again["steps"].values())
    assert all(info.misses <= 1 for info in dask_client.run(asr._load.cache_info).values())

    # `mediaflow batch` takes the same road when the Dask runner is configured.
    from cli.main import main

    capsys.readouterr()
    assert main(["batch", *sources]) == 2  # the corrupt file
    out, err = capsys.readouterr()
    assert sorted(out.split()) == sorted([*result["done"].values(), *result["done"]])
    assert "corrupt.mp3" in err and "not a recognised audio" in err
    assert store.count() == 3 and asr._load.cache_info().misses == loads_here

    # So does the watched folder: a new file there (the first episode as FLAC: new bytes) goes to a worker.
    from flows.episodes import process_folder
    from mediaflow.audio import decode

    inbox = config.get_settings().inbox_dir
    inbox.mkdir(parents=True, exist_ok=True)
    fresh = inbox / "again.flac"
    fresh.write_bytes(encode(decode(batch_files[0][0]), 16_000, "flac"))
    os.utime(fresh, (0, 0))  # settled: not still being copied in
    out = process_folder()
    assert out["failed"] == {} and len(out["processed"]) == 1 and store.count() == 4
    assert store.get_episode(out["processed"][0]).status == "done"
    assert asr._load.cache_info().misses == loads_here  # transcribed on a worker, not here


def test_settings_choose_the_task_runner():
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    from flows.runners import task_runner

    assert isinstance(task_runner(config.Settings(task_runner="default")), ThreadPoolTaskRunner)
    remote = task_runner(config.Settings(task_runner="dask", dask_address="tcp://127.0.0.1:8786"))
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://127.0.0.1:8786"
    local = task_runner(config.Settings(task_runner="dask", dask_workers=3, asr_threads=0))
    assert local.cluster_kwargs["n_workers"] == 3 and local.cluster_kwargs["threads_per_worker"] == 1
    assert local.cluster_kwargs["env"]["PREFECT_API_URL"].startswith("http")
