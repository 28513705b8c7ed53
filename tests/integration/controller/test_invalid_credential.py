"""An API key a header can't carry, on the real API server: the policy and its backend say so (condition and
Warning Event, never the key), only that backend is left out of the ext_proc's config while the Gateway's
other changes go on, and fixing the Secret brings the backend back."""

from __future__ import annotations

import base64
import re

from controller.gateway import kinds
from controller.runtime import SECRETS
from controller.translate import extproc_name
from tests.integration.controller.conftest import Aigw, eventually, gateway_yaml
from tests.integration.controller.manifests import api_key_policy, backend, docs, route, secret, service

BAD_KEY = "sk-leak-one\nx-injected: two"


async def auth_keys(aigw: Aigw, expected: dict[str, bytes]) -> bool:
    """Whether the Gateway's auth Secret (what the ext_proc mounts) holds exactly ``expected``."""
    auth = await aigw.get(SECRETS, extproc_name("gw"))
    assert auth is not None, "no auth Secret"
    data = {k: base64.b64decode(v) for k, v in (auth.get("data") or {}).items()}
    assert data.keys() == expected.keys() and data == expected, sorted(data)
    return True


async def test_a_bad_key_is_its_policys_condition_and_the_rest_of_the_gateway_keeps_updating(
    aigw: Aigw,
) -> None:
    ns = aigw.ns
    await aigw.apply(docs(
        gateway_yaml("gw"), service("s-keyed"), service("s-open"),
        secret("key", apiKey="sk-good-0"), api_key_policy("p", "key"),
        backend("b-keyed", service="s-keyed", bsp="p"), backend("b-open", service="s-open"),
        route("r", "gw", "b-keyed", "b-open"),
    ))  # fmt: skip
    await aigw.config_when(
        "gw", lambda c: [b.name for b in c.backends] == [f"b-keyed.{ns}", f"b-open.{ns}"], within=30
    )

    await aigw.apply(secret("key", apiKey=BAD_KEY))
    cond = await aigw.wait_condition(
        kinds.BACKENDSECURITYPOLICIES, "p", "ResolvedRefs", "False", "InvalidCredential", within=30
    )
    assert f"Secret {ns}/key key 'apiKey' holds characters not allowed in an HTTP header" in cond["message"]
    cond = await aigw.wait_condition(
        kinds.AISERVICEBACKENDS, "b-keyed", "ResolvedRefs", "False", "InvalidCredential", within=30
    )
    assert f"BackendSecurityPolicy {ns}/p: Secret {ns}/key key 'apiKey'" in cond["message"]
    await aigw.config_when("gw", lambda c: [b.name for b in c.backends] == [f"b-open.{ns}"], within=30)
    await eventually(lambda: auth_keys(aigw, {}), within=30)  # the bad key never reaches the ext_proc

    async def described() -> str:
        out = await aigw.kubectl("-n", ns, "describe", "backendsecuritypolicies.aigateway.envoyproxy.io", "p")
        status, events = out.split("Events:", 1)
        assert re.search(r"Reason:\s+InvalidCredential\n", status), out
        assert re.search(r"Warning\s+InvalidCredential\s", events), out
        return out

    out = await eventually(described, within=30)
    everything = out + str(await aigw.events("p")) + str(await aigw.events("b-keyed"))
    assert "sk-leak" not in everything and "x-injected" not in everything

    # the Gateway's other changes are not held up by the bad key
    await aigw.apply(docs(service("s-new"), backend("b-new", service="s-new"), route("r2", "gw", "b-new")))
    await aigw.config_when(
        "gw", lambda c: [b.name for b in c.backends] == [f"b-new.{ns}", f"b-open.{ns}"], within=30
    )

    # fixed: the conditions clear and the backend and its key are back
    await aigw.apply(secret("key", apiKey="sk-good-1"))
    await aigw.wait_condition(kinds.BACKENDSECURITYPOLICIES, "p", "ResolvedRefs", "True", within=30)
    await aigw.wait_condition(kinds.AISERVICEBACKENDS, "b-keyed", "ResolvedRefs", "True", within=30)
    await aigw.config_when("gw", lambda c: f"b-keyed.{ns}" in [b.name for b in c.backends], within=30)

    await eventually(lambda: auth_keys(aigw, {f"{ns}.key.apiKey": b"sk-good-1"}), within=30)
