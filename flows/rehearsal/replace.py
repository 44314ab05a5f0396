"""A rehearsal replaces the previous one on the Prefect server (issue 11).

``prepflow up`` rehearses each time it starts, so the UI shows real runs and artifacts. Each
rehearsal's runs are tagged ``rehearsal`` and ``process:<its id>`` and its artifacts keyed
``<its id>-…`` (``flows.rehearsal.driver``); before a new one, this removes those of the last,
so the server holds one rehearsal beside the live process, not one more per start.
"""

from __future__ import annotations

from flows.rehearsal.driver import rehearsal_tags

#: Flow runs read and deleted per request.
PAGE = 200


def clear_rehearsal(process_id: str) -> tuple[int, int]:
    """Delete the flow runs and artifacts of the rehearsal ``process_id``; returns how many
    (runs, artifacts). Nothing of another process is touched: runs must carry both tags,
    artifact keys must start with the rehearsal's id and a dash."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        FlowRunFilter,
        FlowRunFilterTags,
    )

    runs = artifacts = 0
    prefix = f"{process_id}-"
    with get_client(sync_client=True) as client:
        while True:
            found = client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(like_=prefix)), limit=PAGE)
            mine = [a for a in found if (a.key or "").startswith(prefix)]
            for artifact in mine:
                client.delete_artifact(artifact.id)
            artifacts += len(mine)
            if len(found) < PAGE or not mine:
                break
        tags = FlowRunFilterTags(all_=rehearsal_tags(process_id))
        while batch := client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=tags),
                                             limit=PAGE):
            for run in batch:
                client.delete_flow_run(run.id)
            runs += len(batch)
    return runs, artifacts
