"""Nightly narration: speak the "why this?" of each episode's nearest neighbours ahead of time."""

from __future__ import annotations

from prefect import flow, get_run_logger, task

from mediaflow import catalogue, narration
from mediaflow.config import get_settings
from mediaflow.errors import MediaflowError


@task(retries=1, retry_delay_seconds=30)
def narrate_pair(source_id: str, target_id: str, voice: str | None) -> bool:
    """Returns True when new audio was made, False when the cached file was still right."""
    return not narration.narrate(source_id, target_id, get_settings(), voice=voice).cached


@flow(name="narrate-recommendations")
def narrate_recommendations(per_episode: int = 3, max_pairs: int = 500, voice: str | None = None) -> dict:
    """For every episode, narrate why its `per_episode` most similar episodes follow it (cached)."""
    settings = get_settings()
    logger = get_run_logger()
    made = kept = failed = 0
    for item in catalogue.load_catalogue(settings).items():
        for s in catalogue.similar_episodes(item.episode_id, settings, k=per_episode):
            if made + kept + failed >= max_pairs:
                break
            try:
                if narrate_pair(item.episode_id, s.recommendation.episode_id, voice):
                    made += 1
                else:
                    kept += 1
            except MediaflowError as exc:
                failed += 1
                logger.warning("narration %s -> %s: %s", item.episode_id, s.recommendation.episode_id, exc)
    logger.info("narrations: %d new, %d cached, %d failed", made, kept, failed)
    return {"new": made, "cached": kept, "failed": failed}
