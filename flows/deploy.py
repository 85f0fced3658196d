"""Every scheduled deployment in one place; `mediaflow serve-flows` serves them.

| deployment | schedule (cron, local time) | what |
|---|---|---|
| poll-feeds | every 15 min | new feed episodes downloaded and processed |
| process-folder | every 5 min | new files in the watched folder processed |
| refresh-semantic-ids | daily 03:00 | codebook refitted over the catalogue, IDs reassigned |
| narrate-recommendations | nightly 04:00 | "why this?" narrations made ahead for each episode's neighbours |

Each has a concurrency limit of 1: a slow run is never overtaken by the next one.
"""

from __future__ import annotations

SCHEDULES = {
    "poll-feeds": "*/15 * * * *",
    "process-folder": "*/5 * * * *",
    "refresh-semantic-ids": "0 3 * * *",
    "narrate-recommendations": "0 4 * * *",
}


def build_deployments(timezone: str | None = None) -> list:
    from prefect.schedules import Cron

    from flows.catalogue import refresh_semantic_ids
    from flows.episodes import process_folder
    from flows.feeds import poll_feeds
    from flows.narration import narrate_recommendations

    def cron(name: str):
        return Cron(SCHEDULES[name], timezone=timezone) if timezone else Cron(SCHEDULES[name])

    return [
        poll_feeds.to_deployment("poll-feeds", schedule=cron("poll-feeds"), concurrency_limit=1, tags=["ingest"]),
        process_folder.to_deployment("process-folder", schedule=cron("process-folder"), concurrency_limit=1,
                                     tags=["ingest"]),
        refresh_semantic_ids.to_deployment("refresh-semantic-ids", schedule=cron("refresh-semantic-ids"),
                                           concurrency_limit=1, parameters={"levels": 3}, tags=["catalogue"]),
        narrate_recommendations.to_deployment(
            "narrate-recommendations", schedule=cron("narrate-recommendations"), concurrency_limit=1,
            parameters={"per_episode": 3, "max_pairs": 500}, tags=["speech"]),
    ]


def serve_all(timezone: str | None = None) -> None:
    """Serve every deployment from this process until interrupted (needs a Prefect API server)."""
    from prefect import serve

    serve(*build_deployments(timezone))
