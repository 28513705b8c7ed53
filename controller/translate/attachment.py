"""Is a Gateway's ext_proc attached? Our HTTPRoutes go only to Gateways where it is (pure).

Our HTTPRoutes route on the ``x-ai-eg-selected-backend`` header, which only our ext_proc may set: on a
Gateway without it, clients would choose backends (and the credentials sent to them) by header. So an
HTTPRoute of ours lists a Gateway as a parent only while that Gateway's EnvoyExtensionPolicy is in place:

- **attached**: the API server holds the policy with the spec we build (``contains``: the server may add
  defaults), and no ``status.ancestors`` entry for the Gateway says ``Accepted=False`` (Envoy Gateway writes
  one per Gateway the policy attaches to);
- **refused**: the API server refused the policy at the last apply, or Envoy Gateway did not accept it: the
  routes of that Gateway get ``Accepted=False`` reason ``ExtensionPolicyNotAccepted`` with the message;
- **pending**: not stored yet, or stored with another spec (our apply is on its way): no HTTPRoute parent
  yet, and no condition either (the apply's own event brings the next reconcile within moments).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from api import headers
from api.envoygateway import Backend
from api.gatewayapi import GATEWAY
from api.objects import Obj, ObjKey
from controller.translate import names as n
from controller.translate.snapshot import BuildOptions, Snapshot
from controller.translate.views import mapping

EXTENSION_POLICY_NOT_ACCEPTED = "ExtensionPolicyNotAccepted"


def contains(want: Any, have: Any) -> bool:
    """Whether ``have`` holds every field of ``want`` with the same value (lists: same length, item-wise;
    an empty map or list in ``want`` also matches a missing field)."""
    if isinstance(want, dict):
        # The API server drops empty maps and lists (a Secret with no data has no ``data``).
        return isinstance(have, dict) and all(
            contains(x, have[k]) if k in have else x in ({}, []) for k, x in want.items()
        )
    if isinstance(want, list):
        return isinstance(have, list) and len(want) == len(have) and all(map(contains, want, have))
    return bool(want == have)


def extension_policy_spec(gateway: ObjKey, options: BuildOptions) -> Obj:
    """The spec of the Gateway's EnvoyExtensionPolicy: its ext_proc on the whole Gateway, fail closed
    (``failOpen: false``, explicit: with the ext_proc unreachable, requests get a 5xx and never reach an
    upstream); request body buffered (the model is read from it), response body buffered with
    ``allowModeOverride`` (the ext_proc switches streamed responses to STREAMED), metadata namespace
    ``io.envoy.ai_gateway`` writable (token costs), and ``io.envoy.ai_gateway.credentials`` (the backend's
    credential, which only our routes copy into headers: see ``controller/extensionserver/credentials.py``).
    The backend is the ext_proc's Service, or an EG ``Backend`` (``--extproc-address``; ``--extproc-mtls``:
    the Service by name, over mutual TLS)."""
    name = n.extproc_name(gateway.name)
    ref: Obj = {"name": name, "port": n.EXTPROC_GRPC_PORT}
    if options.extproc_address is not None or options.extproc_mtls:
        eg = Backend.KIND_INFO
        port = options.extproc_address.port if options.extproc_address is not None else n.EXTPROC_GRPC_PORT
        ref = {"group": eg.group, "kind": eg.kind, "name": name, "port": port}
    return {
        "targetRefs": [{"group": GATEWAY.group, "kind": GATEWAY.kind, "name": gateway.name}],
        "extProc": [
            {
                "backendRefs": [ref],
                "failOpen": False,
                "processingMode": {
                    "allowModeOverride": True,
                    "request": {"body": "Buffered"},
                    "response": {"body": "Buffered"},
                },
                "messageTimeout": options.message_timeout,
                "metadata": {
                    "writableNamespaces": [headers.METADATA_NAMESPACE, headers.CREDENTIAL_METADATA_NAMESPACE]
                },
                # a status only this failure produces: the BackendTrafficPolicy turns it into an OpenAI 503
                "statusOnError": n.EXTPROC_ERROR_STATUS,
            }
        ],
    }


@dataclass(frozen=True, slots=True)
class Attachment:
    """Whether the Gateway's ext_proc is attached; when refused, why (a message naming the policy)."""

    attached: bool
    refused: str | None = None


def _eg_refusal(policy: Mapping[str, Any], gateway: ObjKey) -> str | None:
    """Envoy Gateway's ``Accepted=False`` for ``gateway`` in the policy's ``status.ancestors``, as text."""
    ns = str(mapping(policy.get("metadata")).get("namespace") or "")
    for anc in map(mapping, mapping(policy.get("status")).get("ancestors") or []):
        ref = mapping(anc.get("ancestorRef"))
        if (
            ref.get("kind", GATEWAY.kind) != GATEWAY.kind
            or ref.get("name") != gateway.name
            or (ref.get("namespace") or ns) != gateway.namespace
        ):
            continue
        for c in map(mapping, anc.get("conditions") or []):
            if c.get("type") == "Accepted" and c.get("status") == "False":
                return f"{c.get('reason', '')}: {c.get('message', '')}"
    return None


def attachment(gateway: ObjKey, snap: Snapshot, options: BuildOptions) -> Attachment:
    """The state of ``gateway``'s ext_proc, from the stored policy and the last apply (see module doc)."""
    policy = f"EnvoyExtensionPolicy {gateway.namespace}/{n.extproc_name(gateway.name)}"
    refused = snap.refused_policies.get(gateway)
    if refused is not None:
        return Attachment(False, f"Gateway {gateway}: the API server refused {policy}: {refused}")
    live = snap.extension_policies.get(gateway)
    if live is None or not contains(extension_policy_spec(gateway, options), live.get("spec")):
        return Attachment(False)
    eg = _eg_refusal(live, gateway)
    if eg is not None:
        return Attachment(False, f"Gateway {gateway}: Envoy Gateway did not accept {policy} ({eg})")
    return Attachment(True)
