"""A small synchronous HTTP/1.1 client for requests through the Envoys (and ``aigw run``) our tests start.

Contract: ``request(port, path, body=..., headers=...)`` sends one request to ``host:port`` (127.0.0.1 unless
told) on a fresh connection, with ``content-type: application/json`` unless ``headers`` say otherwise, as POST
when there is a body and GET otherwise (unless ``method`` says), and returns a ``Reply``: the status, the
response headers with lower-cased names, and the whole body. No retries.
"""

from __future__ import annotations

import http.client
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def upstream(self) -> str | None:
        """Name of the fake upstream that answered (``x-upstream-name``)."""
        return self.headers.get("x-upstream-name")

    def json(self) -> Any:
        return orjson.loads(self.body)


class _HTTP10Connection(http.client.HTTPConnection):
    _http_vsn = 10
    _http_vsn_str = "HTTP/1.0"


def request(
    port: int,
    path: str,
    *,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    method: str | None = None,
    host: str = "127.0.0.1",
    timeout: float = 30.0,
    http10: bool = False,
) -> Reply:
    """One request on a fresh connection; see the module docstring. ``http10``: speak HTTP/1.0 (as ``ab`` and
    old clients do): no keep-alive, the answer ends when the server closes."""
    conn = (
        _HTTP10Connection(host, port, timeout=timeout)
        if http10
        else http.client.HTTPConnection(host, port, timeout=timeout)
    )
    try:
        hdrs = {"content-type": "application/json", **(headers or {})}
        conn.request(method or ("POST" if body is not None else "GET"), path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()
