"""Secrets and Services the controller does not read cost it their metadata only (real API server).

The informers of Secrets and Services list and watch metadata; the controller fetches full copies of the ones
a route references, and follows their changes through ``resourceVersion``.
"""

from __future__ import annotations

import base64

from controller.gateway.fetched import FetchedObjects
from controller.runtime import SECRETS, Informer
from controller.translate import extproc_name
from tests.integration.controller.conftest import Aigw, eventually, gateway_yaml
from tests.integration.controller.manifests import api_key_policy, backend, docs, route, secret, service


def informer_of(aigw: Aigw, *, metadata_only: bool, label_selector: str | None = None) -> Informer:
    return next(
        i
        for (res, _ns, sel, meta), i in aigw.mgr._informers.items()
        if res == SECRETS and meta == metadata_only and sel == label_selector
    )


async def test_unrelated_secrets_are_cached_by_metadata_only(aigw: Aigw) -> None:
    helm_like = "x" * 200_000
    await aigw.apply(docs(
        secret("sh.helm.release.v1.app.v1", release=helm_like), gateway_yaml("gw"), service("s"),
        secret("key", apiKey="sk-1"), api_key_policy("p", "key"), backend("b", service="s", bsp="p"),
        route("r", "gw", "b"),
    ))  # fmt: skip
    await aigw.config_when("gw", lambda c: len(c.backends) == 1)
    meta = informer_of(aigw, metadata_only=True)
    ns = aigw.ns

    async def listed() -> bool:
        return f"{ns}/sh.helm.release.v1.app.v1" in meta.store

    await eventually(listed)
    # no Secret's data is held by the metadata informer, the big one is not fetched, ours is cached in full
    assert all("data" not in o for o in meta.store.list())
    fetched = aigw.reconciler.caches.secrets
    assert isinstance(fetched, FetchedObjects)
    assert fetched.get(f"{ns}/sh.helm.release.v1.app.v1") is None
    assert fetched.get(f"{ns}/key") is not None
    owned = informer_of(
        aigw, metadata_only=False, label_selector="app.kubernetes.io/managed-by=envoy-ai-gateway"
    )
    assert [o["metadata"]["name"] for o in owned.store.list(ns)] == [extproc_name("gw")]

    # a change of a referenced Secret's data still arrives (its resourceVersion changes) and is fetched
    before = fetched.fetches
    await aigw.apply(secret("key", apiKey="sk-2"))

    async def rotated() -> bool:
        obj = await aigw.get(SECRETS, extproc_name("gw"))
        assert obj is not None
        return "sk-2" in {base64.b64decode(v).decode() for v in (obj.get("data") or {}).values()}

    await eventually(rotated)
    assert fetched.fetches > before
