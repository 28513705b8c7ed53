"""Status writes through the ``/status`` subresource: read-modify-write, optimistic locking, retried on 409.

``StatusWriter.update(resource, obj, mutate)`` calls ``mutate`` on a private copy of ``obj``'s status; if the
result equals the current status, nothing is written (a no-op write would bump ``resourceVersion`` and trigger
the controller again, a hot loop). Otherwise it sends a JSON merge patch to ``/status`` carrying
``metadata.resourceVersion``, so a concurrent writer makes it fail with 409 instead of being overwritten; on
409 it re-reads the object from the API server and calls ``mutate`` again (tenacity, up to 5 attempts).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from controller.runtime.cache import Object
from controller.runtime.client import KubeClient, is_conflict
from controller.runtime.resources import Resource

log = logging.getLogger(__name__)

Status = dict[str, Any]
Mutate = Callable[[Status], Status | None]
"""Gets a private copy of the status; returns the desired status (or None after mutating it in place)."""

CONFLICT_ATTEMPTS = 5


def merge_patch(old: Any, new: Any) -> Any:
    """The RFC 7386 JSON merge patch that turns ``old`` into ``new`` (lists are replaced whole)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            patch[key] = merge_patch(old[key], value)
    return patch


class StatusWriter:
    """Writes statuses for one component. Reads only for a retry after a conflict."""

    def __init__(self, client: KubeClient) -> None:
        self._client = client

    async def update(self, resource: Resource, obj: Object, mutate: Mutate) -> Object | None:
        """Apply ``mutate`` to ``obj``'s status and write it; the written object, or None if unchanged."""
        current = obj
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(is_conflict),
            stop=stop_after_attempt(CONFLICT_ATTEMPTS),
            wait=wait_exponential_jitter(multiplier=0.01, max=1.0, jitter=0.05),
            reraise=True,
        ):
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    meta = obj["metadata"]
                    current = await self._client.get(
                        resource, name=meta["name"], namespace=meta.get("namespace")
                    )
                return await self._write_once(resource, current, mutate)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _write_once(self, resource: Resource, obj: Object, mutate: Mutate) -> Object | None:
        old_status: Status = obj.get("status") or {}
        draft = copy.deepcopy(old_status)
        result = mutate(draft)
        new_status = draft if result is None else result
        if new_status == old_status:
            return None
        meta = obj["metadata"]
        body = {
            "metadata": {"resourceVersion": meta["resourceVersion"]},
            "status": merge_patch(old_status, new_status),
        }
        return await self._client.patch(
            resource, name=meta["name"], namespace=meta.get("namespace"), body=body, subresource="status"
        )
