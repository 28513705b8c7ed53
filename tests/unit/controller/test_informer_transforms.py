"""Every informer of the controller drops managedFields before it caches an object: nothing of ours reads
them, and they are often the largest part of an object."""

from __future__ import annotations

import dataclasses

from controller.gateway.setup import ControllerSettings, Informers, new_informers
from controller.runtime import Informer, Manager
from controller.translate import BuildOptions


def _every_informer(infs: Informers) -> dict[str, Informer]:
    return {f.name: i for f in dataclasses.fields(infs) if isinstance(i := getattr(infs, f.name), Informer)}


def test_no_informer_caches_managed_fields() -> None:
    mgr = Manager(api_client=None, health_port=None)
    settings = ControllerSettings(
        options=BuildOptions(enable_inference_extension=True), inference_v1=True, inference_objectives=True
    )
    infs = _every_informer(new_informers(mgr, settings=settings))
    assert len(infs) == len(dataclasses.fields(Informers))  # every optional one is on here
    for name, informer in infs.items():
        obj = {
            "apiVersion": f"{informer.resource.group}/{informer.resource.version}".lstrip("/"),
            "kind": informer.resource.kind,
            "metadata": {
                "name": "a", "namespace": "ns", "resourceVersion": "3", "labels": {"k": "v"},
                "managedFields": [{"manager": "ai-gateway-controller", "operation": "Apply"}],
            },
            "spec": {"x": 1},
        }  # fmt: skip
        assert informer.transform is not None, name
        kept = informer.transform(obj)
        assert "managedFields" not in kept["metadata"], name
        assert kept["metadata"]["labels"] == {"k": "v"} and kept["metadata"]["resourceVersion"] == "3", name
