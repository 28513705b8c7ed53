"""Synchronous Kubernetes helpers for the e2e tests, all through our real kubectl against the real API server.

Contract: ``Kube(control_plane)`` applies (server-side), reads, deletes and describes objects given as dicts,
and polls for a condition with a deadline. Every failure raises with kubectl's stderr; nothing is retried
silently except inside ``wait_for``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import yaml

from api.objects import Obj
from tests.realparts.controlplane import ControlPlane

T = TypeVar("T")


def _yaml(objs: Iterable[Obj]) -> str:
    return yaml.safe_dump_all(list(objs), sort_keys=False)


def condition(obj: Obj | None, type_: str) -> Obj | None:
    """The ``status.conditions[]`` entry of type ``type_`` (``None`` when absent)."""
    if not obj:
        return None
    for c in obj.get("status", {}).get("conditions", []) or []:
        if c.get("type") == type_:
            return dict(c)
    return None


class WaitTimeout(AssertionError):
    """``wait_for`` gave up; the message holds the last value seen."""


def wait_for(check: Callable[[], T | None], what: str, timeout: float = 60, interval: float = 0.5) -> T:
    """Poll ``check`` until it returns a truthy value (returned); raise ``WaitTimeout`` naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            value = check()
        except Exception as e:  # the last error is reported if we time out
            last = e
        else:
            if value:
                return value
            last = value
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r}")
        time.sleep(interval)


class Kube:
    """kubectl against one control plane."""

    def __init__(self, control_plane: ControlPlane) -> None:
        self.cp = control_plane

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        return self.cp.kubectl(*args, input=input, check=check).stdout

    def apply(self, *objs: Obj) -> None:
        """Server-side apply (field manager ``e2e``, forcing conflicts) of every object."""
        self.kubectl(
            "apply", "--server-side", "--force-conflicts", "--field-manager=e2e", "-f", "-", input=_yaml(objs)
        )

    def delete(self, *objs: Obj, wait: bool = False) -> None:
        """Delete the objects; missing ones are fine."""
        self.kubectl(
            "delete", "--ignore-not-found", f"--wait={str(wait).lower()}", "-f", "-", input=_yaml(objs)
        )

    def get(self, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        """The object as JSON, or ``None`` when it does not exist."""
        args = ["get", kind, name, "-o", "json", "--ignore-not-found"]
        if namespace:
            args += ["-n", namespace]
        out = self.kubectl(*args)
        return json.loads(out) if out.strip() else None

    def items(self, kind: str, namespace: str) -> list[Obj]:
        """Every object of ``kind`` in ``namespace``."""
        found: list[Obj] = json.loads(self.kubectl("get", kind, "-n", namespace, "-o", "json"))["items"]
        return found

    def describe(self, kind: str, name: str, namespace: str) -> str:
        return self.kubectl("describe", kind, name, "-n", namespace)

    def events(self, namespace: str, involved_name: str | None = None) -> list[Obj]:
        """Events in ``namespace`` (core/v1 and events.k8s.io both land here), optionally for one object."""
        items = self.items("events", namespace)
        if involved_name is not None:
            items = [e for e in items if e.get("involvedObject", {}).get("name") == involved_name]
        return items

    def wait_condition(
        self, kind: str, name: str, namespace: str, type_: str, status: str = "True", timeout: float = 60
    ) -> Obj:
        """Wait until the object's condition ``type_`` has ``status``; return the condition."""

        def check() -> Obj | None:
            c = condition(self.get(kind, name, namespace), type_)
            return c if c and c.get("status") == status else None

        return wait_for(check, f"{kind} {namespace}/{name} {type_}={status}", timeout)
