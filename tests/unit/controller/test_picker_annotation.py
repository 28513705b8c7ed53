"""The InferencePool's endpoint-picker annotation reaches the filter config; a bad one is reported on the
pool and never stops it from being served."""

from __future__ import annotations

from dataclasses import replace

from api.picker import PICKER_ANNOTATION, PickerType
from controller.translate import build_gateway
from tests.unit.controller.objects import keyed, pool
from tests.unit.controller.test_translate import INF, cond, filter_config, pool_snap, status_of


def _annotated(value: str) -> dict[str, object]:
    p = pool("p", {"app": "x"})
    p["metadata"]["annotations"] = {PICKER_ANNOTATION: value}
    return p


def test_no_annotation_leaves_the_picker_unset_so_the_ext_proc_uses_its_defaults() -> None:
    cfg = filter_config(pool_snap(), INF)
    assert cfg.pools[0].picker is None
    assert "picker" not in cfg.to_json_dict()["pools"][0]


def test_the_annotation_reaches_the_filter_config() -> None:
    value = "type: LoadAware\nweights: {prefix: 5, load: 1}\nsaturation: {queueDepth: 8, standardFactor: 3}\n"
    s = replace(pool_snap(), pools=keyed(_annotated(value)))
    b = build_gateway(s, INF)
    assert b.filter_config is not None
    picker = b.filter_config.pools[0].picker
    assert picker is not None
    assert (picker.weights.prefix, picker.weights.load, picker.saturation.queue_depth) == (5, 1, 8)
    assert cond(status_of(b.statuses, "InferencePool", "p"), "Accepted", 0)[0] == "True"
    random = replace(pool_snap(), pools=keyed(_annotated('{"type": "Random"}')))
    picker2 = filter_config(random, INF).pools[0].picker
    assert picker2 is not None and picker2.type == PickerType.RANDOM


def test_a_bad_annotation_is_reported_and_the_pool_keeps_serving_with_defaults() -> None:
    for value, needle in [
        ("weights: {load: -1}", "weights.load"),
        ("typo: 1", "typo"),
        ("[1, 2]", "expected a mapping"),
        ("a: [", "not valid YAML"),
    ]:
        s = replace(pool_snap(), pools=keyed(_annotated(value)))
        b = build_gateway(s, INF)
        status, reason, msg = cond(status_of(b.statuses, "InferencePool", "p"), "Accepted", 0)
        assert (status, reason) == ("False", "InvalidPickerConfig"), value
        assert needle in msg and PICKER_ANNOTATION in msg and "default picker settings" in msg
        assert b.filter_config is not None
        (p,) = b.filter_config.pools
        assert p.picker is None and p.members  # still served, with the defaults
