"""Store invariants: indexes follow every write; whole objects are replaced, never mutated."""

from __future__ import annotations

from typing import Any

import pytest

from controller.runtime.cache import NAMESPACE_INDEX, Store
from controller.runtime.resources import CONFIGMAPS, NAMESPACES, Resource, object_key, split_key


def route(name: str, ns: str, *backends: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns}, "spec": {"backends": list(backends)}}


def backends_index(obj: dict[str, Any]) -> list[str]:
    ns = obj["metadata"]["namespace"]
    return [f"{ns}/{b}" for b in obj["spec"]["backends"]]


def test_index_follows_upsert_and_delete() -> None:
    store = Store()
    store.add_indexer("backend", backends_index)
    store.upsert(route("r1", "a", "b1", "b2"))
    store.upsert(route("r2", "a", "b2"))
    assert [o["metadata"]["name"] for o in store.by_index("backend", "a/b2")] == ["r1", "r2"]
    store.upsert(route("r1", "a", "b1"))  # r1 stops referencing b2
    assert store.index_keys("backend", "a/b2") == ["a/r2"]
    store.delete("a/r2")
    assert store.by_index("backend", "a/b2") == []
    assert store.index_keys("backend", "a/b1") == ["a/r1"]


def test_indexer_added_late_indexes_existing_objects() -> None:
    store = Store()
    store.upsert(route("r1", "a", "b1"))
    store.add_indexer("backend", backends_index)
    assert store.index_keys("backend", "a/b1") == ["a/r1"]
    with pytest.raises(ValueError):
        store.add_indexer("backend", backends_index)


def test_namespace_index_and_list() -> None:
    store = Store()
    store.upsert(route("r1", "a"))
    store.upsert(route("r2", "b"))
    assert [o["metadata"]["name"] for o in store.list(namespace="a")] == ["r1"]
    assert len(store.list()) == 2
    assert store.index_keys(NAMESPACE_INDEX, "b") == ["b/r2"]
    assert store.get_by_name("r2", "b") is store.get("b/r2")


def test_replace_swaps_content_and_indexes() -> None:
    store = Store()
    store.add_indexer("backend", backends_index)
    store.upsert(route("old", "a", "b1"))
    store.replace([route("new", "a", "b2")])
    assert store.keys() == ["a/new"]
    assert store.by_index("backend", "a/b1") == []
    assert store.index_keys("backend", "a/b2") == ["a/new"]


def test_upsert_replaces_the_object_never_mutates_it() -> None:
    store = Store()
    first = route("r1", "a", "b1")
    store.upsert(first)
    held = store.get("a/r1")
    old = store.upsert(route("r1", "a", "b2"))
    assert old is first and held is first
    assert first["spec"]["backends"] == ["b1"]


def test_unknown_index_raises() -> None:
    with pytest.raises(KeyError):
        Store().by_index("nope", "x")


def test_keys_of_namespaced_and_cluster_objects() -> None:
    assert object_key(route("r", "ns")) == "ns/r"
    assert object_key({"metadata": {"name": "cluster-thing"}}) == "cluster-thing"
    assert split_key("ns/r") == ("ns", "r")
    assert split_key("cluster-thing") == ("", "cluster-thing")


def test_resource_paths() -> None:
    assert CONFIGMAPS.path(namespace="ns") == "/api/v1/namespaces/ns/configmaps"
    assert CONFIGMAPS.path() == "/api/v1/configmaps"
    assert NAMESPACES.path(name="x") == "/api/v1/namespaces/x"
    crd = Resource(group="aigateway.envoyproxy.io", version="v1alpha1", plural="aigatewayroutes", kind="R")
    assert crd.api_version == "aigateway.envoyproxy.io/v1alpha1"
    assert (
        crd.path(namespace="ns", name="r", subresource="status")
        == "/apis/aigateway.envoyproxy.io/v1alpha1/namespaces/ns/aigatewayroutes/r/status"
    )
    with pytest.raises(ValueError):
        NAMESPACES.path(namespace="ns")
    with pytest.raises(ValueError):
        CONFIGMAPS.path(namespace="ns", subresource="status")
