"""``aigw run --gateway``: which Gateway the standalone gateway plays, from the shipped examples."""

from __future__ import annotations

from pathlib import Path

import pytest

from aigw.standalone.inputs import load_objects
from aigw.standalone.store import Store, build_store
from aigw.standalone.translate import choose_gateway
from api.objects import ObjKey

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "standalone"


def _store() -> Store:
    loaded = load_objects([EXAMPLES])
    store, invalid = build_store(loaded.objects)
    assert not loaded.errors and not invalid
    return store


def test_without_a_flag_the_only_gateway_is_served() -> None:
    key, obj = choose_gateway(_store(), None)
    assert key == ObjKey("default", "aigw")
    assert obj["spec"]["gatewayClassName"] == "envoy-ai-gateway"


def test_a_requested_gateway_in_the_inputs_is_served() -> None:
    key, _ = choose_gateway(_store(), ObjKey("default", "aigw"))
    assert key == ObjKey("default", "aigw")


def test_a_requested_gateway_nothing_mentions_is_an_error_naming_what_there_is() -> None:
    # A typo in --gateway must not build an empty gateway that answers 404 to everything (and --check: OK).
    with pytest.raises(ValueError, match=r"default/aigwx.*default/aigw"):
        choose_gateway(_store(), ObjKey("default", "aigwx"))
