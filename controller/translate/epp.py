"""A v1 InferencePool's external endpoint picker (EPP): the Service it names, checked, and its addresses
(pure).

``endpointPickerRef`` names a Service in the pool's namespace and a port on it. The ext_proc speaks the
Inference Extension's endpoint-picker protocol (an Envoy ext_proc stream) to that Service itself, so it needs
the Service's addresses: the controller resolves ``<svc>.<ns>.svc.<cluster-domain>`` like any other name
(``Resolution.used_hostnames``), and the ext_proc dials the answers. A ref that can't be used is a
``ResolvedRefs=False`` reason ``InvalidExtensionRef`` with a message saying what to fix; the pool is then not
served (a request never reaches Pods the pool owner meant an EPP to choose from).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from api import filterconfig as fc
from api.corev1 import SERVICE
from api.inference_v1 import EPP_TLS_ANNOTATION, EndpointPickerRef, InferencePool
from api.objects import Obj, ObjKey
from controller.translate.names import service_hostname
from controller.translate.snapshot import DnsAnswer
from controller.translate.views import service_ports


@dataclass(frozen=True, slots=True)
class EppPlan:
    """The EPP of a v1 pool: its Service, port and DNS name, the addresses known for it, or why it is not
    usable (``problem``: a ``ResolvedRefs`` message)."""

    service: ObjKey
    port: int
    hostname: str
    endpoints: tuple[fc.Endpoint, ...] = ()
    problem: str | None = None
    dns_error: str | None = None
    """The last failed lookup of ``hostname`` (with no addresses known, the EPP counts as down)."""
    tls: bool = True
    """TLS to the EPP (``EPP_TLS_ANNOTATION``)."""

    @property
    def label(self) -> str:
        """``<name>.<namespace>:<port>``, as the ext_proc names the EPP in logs and errors."""
        return f"{self.service.dotted}:{self.port}"


def epp_service_key(pool: InferencePool) -> ObjKey | None:
    """The Service an external ``endpointPickerRef`` names (in the pool's namespace); None for our picker."""
    ref = pool.spec.endpoint_picker_ref
    if ref is None or ref.is_builtin:
        return None
    return ObjKey(pool.metadata.namespace, ref.name)


def _where(ref: EndpointPickerRef) -> str:
    return f"{ref.kind} {ref.name}" + (f" port {ref.port.number}" if ref.port else "")


def plan_epp(
    pool: InferencePool,
    *,
    services: Mapping[ObjKey, Obj],
    dns: Mapping[str, DnsAnswer],
    cluster_domain: str,
) -> EppPlan | None:
    """The pool's external EPP, checked against the Services and resolved through ``dns``; None when our
    built-in picker serves the pool."""
    ref = pool.spec.endpoint_picker_ref
    key = epp_service_key(pool)
    if ref is None or key is None:
        return None
    port = ref.port.number if ref.port is not None else 0
    host = service_hostname(name=key.name, namespace=key.namespace, cluster_domain=cluster_domain)
    plan = EppPlan(service=key, port=port, hostname=host)

    def bad(problem: str) -> EppPlan:
        return EppPlan(
            service=key, port=port, hostname=host, problem=f"endpointPickerRef {_where(ref)}: {problem}"
        )

    if not SERVICE.matches(ref.group, ref.kind):
        return bad("only a core Service can be an endpoint picker")
    if ref.port is None:
        return bad("a port is required")
    tls_value = pool.metadata.annotations.get(EPP_TLS_ANNOTATION, "true").strip().lower()
    if tls_value not in ("true", "false"):
        return bad(f'annotation {EPP_TLS_ANNOTATION} must be "true" or "false", not {tls_value!r}')
    svc = services.get(key)
    if svc is None:
        return bad(f"Service {key} not found")
    if (svc.get("spec") or {}).get("type") == "ExternalName":
        return bad(f"Service {key} is an ExternalName Service, which the Inference Extension does not allow")
    ports = service_ports(svc)
    if port not in ports:
        have = ", ".join(map(str, ports)) or "none"
        return bad(f"Service {key} has no port {port} (ports: {have})")
    answer = dns.get(host, DnsAnswer())
    endpoints = tuple(fc.Endpoint(ip=ip, port=port, hostname=host) for ip in sorted(set(answer.ips)))
    return EppPlan(
        service=plan.service,
        port=port,
        hostname=host,
        endpoints=endpoints,
        dns_error=answer.error if not answer.ips else None,
        tls=tls_value == "true",
    )
