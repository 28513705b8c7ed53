"""Gateway API ReferenceGrants: may an object reach an object of another namespace? (pure)

The rule (Gateway API, ``ReferenceGrant`` v1beta1): a reference that crosses namespaces is allowed only when
a ReferenceGrant in the referent's namespace lists the referrer's group, kind and namespace under ``from``
and the referent's group and kind (and name, when set) under ``to``. A reference within one namespace needs
none. The references the controller resolves that may cross namespaces, each checked before the referent is
read:

- AIServiceBackend ``backendRef`` → Service or Envoy Gateway Backend (direct backends and pool members);
- BackendSecurityPolicy ``secretRef`` → Secret (credentials copied to the Gateway's ext_proc).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from api.objects import Obj, ObjKey, core_group
from controller.translate.views import mapping

REF_NOT_PERMITTED = "RefNotPermitted"


def _group(value: Any) -> str:
    return core_group(str(value or ""))


@dataclass(frozen=True, slots=True)
class Ref:
    """One reference: who refers (group, kind, namespace) and to what (group, kind, namespace/name)."""

    from_group: str
    from_kind: str
    from_namespace: str
    to_group: str
    to_kind: str
    to: ObjKey

    @property
    def crosses(self) -> bool:
        return self.from_namespace != self.to.namespace

    def describe_to(self) -> str:
        kind = f"{self.to_group}/{self.to_kind}" if self.to_group else self.to_kind
        return f"{kind} {self.to}"

    def missing_grant(self) -> str:
        """The message of ``RefNotPermitted``: the grant that would allow this reference."""
        return (
            f"{self.describe_to()} is in another namespace: it needs a ReferenceGrant in namespace "
            f"{self.to.namespace} from {self.from_group}/{self.from_kind} in {self.from_namespace} "
            f"to {self.describe_to()}"
        )


def permitted(ref: Ref, grants: Iterable[Obj]) -> bool:
    """Whether ``ref`` is allowed: same namespace, or a ReferenceGrant of ``grants`` in the referent's
    namespace allows it."""
    if not ref.crosses:
        return True
    for g in grants:
        if str(mapping(g.get("metadata")).get("namespace") or "") != ref.to.namespace:
            continue
        spec = mapping(g.get("spec"))
        froms = [mapping(f) for f in spec.get("from") or []]
        if not any(
            _group(f.get("group")) == ref.from_group
            and f.get("kind") == ref.from_kind
            and f.get("namespace") == ref.from_namespace
            for f in froms
        ):
            continue
        for t in map(mapping, spec.get("to") or []):
            if (
                _group(t.get("group")) == ref.to_group
                and t.get("kind") == ref.to_kind
                and (not t.get("name") or t.get("name") == ref.to.name)
            ):
                return True
    return False
