"""Catalogue-level flows: semantic IDs over every episode."""

from __future__ import annotations

from prefect import flow, get_run_logger, task

from mediaflow import catalogue
from mediaflow.config import get_settings


@task(retries=2, retry_delay_seconds=[5, 30])
def fit_and_assign_semantic_ids(levels: int) -> dict:
    return catalogue.refresh_semantic_ids(get_settings(), levels=levels)


@flow(name="refresh-semantic-ids")
def refresh_semantic_ids(levels: int = 3) -> dict:
    """Refit the semantic-ID codebook on the whole catalogue and give every episode its ID."""
    result = fit_and_assign_semantic_ids(levels)
    get_run_logger().info("semantic IDs: %(episodes)s episodes, %(collisions)s with a suffix, codebook %(codebook_version)s",
                          result)
    return result
