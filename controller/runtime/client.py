"""A small JSON client over a kubernetes_asyncio ``ApiClient``, for any ``Resource``.

Objects are plain camelCase dicts, exactly as the API server sends them. Every call has a timeout (the
kubernetes_asyncio default is none). Errors are ``ApiError`` with the HTTP status and the ``Status`` reason.
With ``metrics``, every request is counted in ``rest_client_requests_total{code,method,host}`` and timed in
``rest_client_request_duration_seconds{verb,host}``. ``watch`` streams events itself (instead of
``kubernetes_asyncio.watch.Watch``) so that the informer owns the loop: bookmarks, 410s and the inactivity
timeout are handled in one place.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from controller.runtime.metrics import Metrics
from controller.runtime.resources import Resource

DEFAULT_TIMEOUT = 30.0

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
"""Accept header of a metadata-only LIST: the API server sends each item's ``metadata`` and nothing else."""
METADATA_OBJECT = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
"""Accept header of a metadata-only WATCH (each event's object is a ``PartialObjectMetadata``)."""


class ApiError(Exception):
    """A non-2xx answer of the API server, or a watch ``ERROR`` event."""

    def __init__(self, *, status: int, reason: str = "", message: str = "") -> None:
        super().__init__(f"{status} {reason}: {message}".strip())
        self.status = status
        self.reason = reason
        self.message = message

    @classmethod
    def from_status(cls, body: dict[str, Any], *, http_status: int = 0) -> ApiError:
        """Build from a ``metav1.Status`` dict."""
        return cls(
            status=int(body.get("code") or http_status),
            reason=str(body.get("reason", "")),
            message=str(body.get("message", "")),
        )


def is_not_found(exc: BaseException) -> bool:
    """404, from our ``ApiError`` or a kubernetes_asyncio ``ApiException``."""
    return getattr(exc, "status", None) == 404


def is_conflict(exc: BaseException) -> bool:
    """409 Conflict (stale resourceVersion) or AlreadyExists."""
    return getattr(exc, "status", None) == 409


def is_gone(exc: BaseException) -> bool:
    """410 Gone / Expired: the resourceVersion is older than etcd's compaction."""
    return getattr(exc, "status", None) == 410 or getattr(exc, "reason", "") in ("Expired", "Gone")


class KubeClient:
    """JSON verbs on ``Resource`` paths. Does not own the ``ApiClient``: the caller closes it."""

    def __init__(self, api_client: Any, *, metrics: Metrics | None = None) -> None:
        self.api_client = api_client
        self._metrics = metrics
        host = getattr(getattr(api_client, "configuration", None), "host", "") or ""
        self._host = urlsplit(host).netloc

    async def _open(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
        request_timeout: aiohttp.ClientTimeout | float,
        accept: str = "application/json",
    ) -> aiohttp.ClientResponse:
        headers = {"Accept": accept}
        if content_type is not None:
            headers["Content-Type"] = content_type
        params = [(k, v) for k, v in (query or {}).items() if v is not None]
        started = time.perf_counter()
        code = "<error>"
        try:
            resp: aiohttp.ClientResponse = await self.api_client.call_api(
                path,
                method,
                query_params=params,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=request_timeout,
            )
            code = str(resp.status)
        finally:
            if self._metrics is not None:
                # For a watch this is the time to the response headers, as in client-go.
                self._metrics.rest_requests.labels(code, method, self._host).inc()
                self._metrics.rest_latency.labels(method, self._host).observe(time.perf_counter() - started)
        if resp.status >= 300:
            try:
                data = await resp.read()
            finally:
                resp.release()
            try:
                parsed = orjson.loads(data)
            except orjson.JSONDecodeError:
                parsed = {"message": data.decode(errors="replace")[:500]}
            raise ApiError.from_status(parsed if isinstance(parsed, dict) else {}, http_status=resp.status)
        return resp

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
        request_timeout: float = DEFAULT_TIMEOUT,
        accept: str = "application/json",
    ) -> dict[str, Any]:
        """One request; the decoded JSON answer."""
        resp = await self._open(
            method,
            path,
            query=query,
            body=body,
            content_type=content_type,
            request_timeout=request_timeout,
            accept=accept,
        )
        try:
            data = await resp.read()
        finally:
            resp.release()
        result: dict[str, Any] = orjson.loads(data) if data else {}
        return result

    async def get(self, resource: Resource, *, name: str, namespace: str | None = None) -> dict[str, Any]:
        """GET one object."""
        return await self.request("GET", resource.path(namespace=namespace, name=name))

    async def list(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        resource_version: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        request_timeout: float = 60.0,
        metadata_only: bool = False,
    ) -> dict[str, Any]:
        """LIST a collection (all namespaces when ``namespace`` is None); the ``*List`` dict (with
        ``metadata_only``, a ``PartialObjectMetadataList``: each item's metadata only)."""
        query = {
            "resourceVersion": resource_version,
            "labelSelector": label_selector,
            "fieldSelector": field_selector,
        }
        return await self.request(
            "GET",
            resource.path(namespace=namespace),
            query=query,
            request_timeout=request_timeout,
            accept=METADATA_LIST if metadata_only else "application/json",
        )

    async def create(
        self, resource: Resource, obj: dict[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]:
        """POST a new object."""
        ns = namespace if namespace is not None else obj.get("metadata", {}).get("namespace")
        return await self.request(
            "POST", resource.path(namespace=ns if resource.namespaced else None), body=obj
        )

    async def replace(
        self, resource: Resource, obj: dict[str, Any], *, subresource: str | None = None
    ) -> dict[str, Any]:
        """PUT an object (optimistic locking on its ``metadata.resourceVersion``)."""
        meta = obj["metadata"]
        path = resource.path(namespace=meta.get("namespace"), name=meta["name"], subresource=subresource)
        return await self.request("PUT", path, body=obj)

    async def patch(
        self,
        resource: Resource,
        *,
        name: str,
        namespace: str | None = None,
        body: Any,
        content_type: str = MERGE_PATCH,
        subresource: str | None = None,
        field_manager: str | None = None,
        force: bool | None = None,
    ) -> dict[str, Any]:
        """PATCH an object or a subresource (JSON merge patch unless told otherwise)."""
        query: dict[str, Any] = {"fieldManager": field_manager}
        if force is not None:
            query["force"] = "true" if force else "false"
        path = resource.path(namespace=namespace, name=name, subresource=subresource)
        return await self.request("PATCH", path, query=query, body=body, content_type=content_type)

    async def delete(self, resource: Resource, *, name: str, namespace: str | None = None) -> dict[str, Any]:
        """DELETE an object."""
        return await self.request("DELETE", resource.path(namespace=namespace, name=name))

    async def watch(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        resource_version: str,
        timeout_seconds: int,
        inactivity_timeout: float,
        label_selector: str | None = None,
        field_selector: str | None = None,
        metadata_only: bool = False,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Stream watch events (``{"type", "object"}`` dicts, bookmarks included) until the server closes.

        With ``metadata_only``, each object is a ``PartialObjectMetadata`` (its metadata only). Raises
        ``TimeoutError`` when nothing (not even a bookmark) arrives for ``inactivity_timeout`` seconds,
        and ``ApiError`` for an HTTP error. ``ERROR`` events are yielded as they are: the caller decides.
        """
        query = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
            "labelSelector": label_selector,
            "fieldSelector": field_selector,
        }
        timeout = aiohttp.ClientTimeout(total=None, connect=10.0, sock_connect=10.0, sock_read=None)
        resp = await self._open(
            "GET",
            resource.path(namespace=namespace),
            query=query,
            request_timeout=timeout,
            accept=METADATA_OBJECT if metadata_only else "application/json",
        )
        try:
            while True:
                async with asyncio.timeout(inactivity_timeout):
                    line = await resp.content.readline()
                if not line:
                    return
                line = line.strip()
                if line:
                    yield orjson.loads(line)
        finally:
            # close, not release: an unfinished stream must not go back to the connection pool.
            resp.close()
