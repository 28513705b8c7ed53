"""``aigw run``'s demo upstreams: the example pool's replicas are simulators, the API-key backend the fake
upstream (its echo of the Authorization header is what the demo shows)."""

from __future__ import annotations

from aigw.cli import EXAMPLES_DIR
from aigw.standalone.inputs import expand_inputs, load_objects
from aigw.standalone.store import build_store
from aigw.standalone.translate import demo_upstreams


def test_the_example_pool_runs_on_simulated_replicas() -> None:
    loaded = load_objects(expand_inputs([EXAMPLES_DIR]))
    assert not loaded.errors
    store, errors = build_store(loaded.objects)
    assert not errors
    ups = {u.name: u for u in demo_upstreams(store)}
    assert {n for n, u in ups.items() if u.sim} == {"demo-llm-1", "demo-llm-2", "demo-llm-3"}
    assert [n for n, u in ups.items() if not u.sim] == ["openai-compatible"]
    assert {u.address.port for n, u in ups.items() if u.sim} == {18081}
