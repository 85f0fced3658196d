"""Feeds in: poll every registered podcast feed, download new episodes, run each through the pipeline."""

from __future__ import annotations

from prefect import flow, get_run_logger, task

from flows.episodes import process_episode, retry_transient
from mediaflow import feeds
from mediaflow.config import get_settings
from mediaflow.errors import MediaflowError
from mediaflow.resources import get_store


@task(retries=2, retry_delay_seconds=[10, 60], retry_condition_fn=retry_transient)
def poll_feed(feed_id: int) -> list[int]:
    """Parse the feed and record new items; returns the ids of items still to process."""
    return [i.id for i in feeds.poll(feed_id, get_settings())]


@task(retries=3, retry_delay_seconds=[5, 30, 120], retry_condition_fn=retry_transient)
def download_item(item_id: int) -> str:
    """Fetch the enclosure (resumes a broken download on retry)."""
    settings = get_settings()
    return str(feeds.fetch_item(get_store(settings.db_url).get_feed_item(item_id), settings))


@flow(name="poll-feeds")
def poll_feeds(feed_ids: list[int] | None = None) -> dict:
    """Every registered feed (or those given): new episodes downloaded and processed, once each."""
    settings = get_settings()
    store = get_store(settings.db_url)
    logger = get_run_logger()
    done, failed = [], {}
    for feed in store.list_feeds():
        if feed_ids and feed.id not in feed_ids:
            continue
        try:
            todo = poll_feed(feed.id)
        except MediaflowError as exc:
            logger.warning("feed %s: %s", feed.url, exc)
            failed[feed.url] = str(exc)
            continue
        show = store.get_feed(feed.id).title
        for item_id in todo:
            item = store.get_feed_item(item_id)
            store.update_item(item_id, attempts=(item.attempts or 0) + 1)
            try:
                path = download_item(item_id)
                eid = process_episode(path, title=item.title, show=show, published_at=item.published_at,
                                      description=item.description, persons=item.persons)
            except MediaflowError as exc:
                logger.warning("%s: %s", item.title, exc)
                store.update_item(item_id, status="failed", error=str(exc)[:2000])
                failed[item.enclosure_url] = str(exc)
                if not exc.transient:
                    feeds.discard_download(item, settings)
                continue
            store.update_item(item_id, status="done", episode_id=eid, error=None)
            feeds.discard_download(item, settings)  # the episode keeps its own copy, named by its hash
            done.append(eid)
    return {"processed": done, "failed": failed}
