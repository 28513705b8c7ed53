"""The ext_proc hot-reloads its mounted config and credential files, so config changes (DNS answers included)
and credential changes must not touch its Deployment's pod template: a template change restarts every pod
(real API server)."""

from __future__ import annotations

import base64
from typing import Any

from controller.runtime import DEPLOYMENTS, SECRETS
from controller.translate import extproc_name
from tests.integration.controller.conftest import Aigw, eventually, gateway_yaml
from tests.integration.controller.manifests import (
    api_key_policy,
    backend,
    docs,
    model,
    pool,
    route,
    secret,
    service,
)


async def template(aigw: Aigw) -> tuple[int, dict[str, Any]]:
    dep = await aigw.get(DEPLOYMENTS, extproc_name("gw"))
    assert dep is not None
    return int(dep["metadata"]["generation"]), dep["spec"]["template"]


async def test_config_dns_and_credential_changes_keep_the_pod_template(aigw: Aigw) -> None:
    ns = aigw.ns
    aigw.dns.set_records({f"m.{ns}.svc.cluster.local": ["10.16.0.1"]})
    await aigw.apply(docs(
        gateway_yaml("gw"), service("m"), backend("m", labels={"app": "m"}), pool("p", {"app": "m"}),
        model("mod", "llama", "p"), route("r", "gw", pool="p"),
    ))  # fmt: skip
    await aigw.config_when("gw", lambda c: len(c.pools[0].members[0].endpoints) == 1)
    gen, tmpl = await eventually(lambda: template(aigw))
    # the auth Secret is mounted from the start: a first credential needs no new volume
    assert {v["name"] for v in tmpl["spec"]["volumes"]} >= {"config", "auth"}

    # DNS answer changes
    aigw.dns.set_records({f"m.{ns}.svc.cluster.local": ["10.16.0.1", "10.16.0.2"]})
    await aigw.config_when("gw", lambda c: len(c.pools[0].members[0].endpoints) == 2, within=30)
    # a route, a backend with a credential
    await aigw.apply(docs(
        service("s"), secret("key", apiKey="sk-1"), api_key_policy("bsp", "key"),
        backend("b", service="s", bsp="bsp"), route("r2", "gw", "b"),
    ))  # fmt: skip
    await aigw.config_when("gw", lambda c: len(c.rules) == 2)

    async def auth_holds(value: str) -> bool:
        obj = await aigw.get(SECRETS, extproc_name("gw"))
        assert obj is not None
        return value in {base64.b64decode(v).decode() for v in (obj.get("data") or {}).values()}

    await eventually(lambda: auth_holds("sk-1"))
    # the credential rotates
    await aigw.apply(secret("key", apiKey="sk-2"))
    await eventually(lambda: auth_holds("sk-2"))

    assert await template(aigw) == (gen, tmpl)

    # what needs a restart still rolls the pods: new container resources change the template
    big = route("r", "gw", pool="p").replace(
        '"rules"',
        '"filterConfig": {"externalProcessor": {"resources": {"limits": {"memory": "1Gi"}}}}, "rules"',
    )
    await aigw.apply(big)

    async def rolled() -> bool:
        g, t = await template(aigw)
        return g > gen and t["spec"]["containers"][0]["resources"]["limits"]["memory"] == "1Gi"

    await eventually(rolled)
