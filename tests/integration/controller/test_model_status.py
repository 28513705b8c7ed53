"""Every InferenceModel gets a true ``Accepted`` within seconds, whatever the order of events (real API
server), and ``/v1/models`` stops listing a model whose pool is gone."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from api.filterconfig import FilterConfig
from controller.gateway import kinds
from extproc.snapshot import compile_config
from tests.integration.controller.conftest import Aigw, gateway_yaml
from tests.integration.controller.manifests import backend, docs, model, pool, route, service

WITHIN = 15.0
"""Seconds: a status is true within a few reconciles, on a loaded machine too."""


def parts() -> dict[str, str]:
    return {
        "gateway": docs(gateway_yaml("gw"), service("m"), backend("m", labels={"app": "m"})),
        "route": route("r", "gw", pool="p"),
        "pool": pool("p", {"app": "m"}),
        "model": model("mod", "llama", "p"),
    }


async def accepted(aigw: Aigw, status: str, reason: str | None = None) -> str:
    c = await aigw.wait_condition(kinds.INFERENCEMODELS, "mod", "Accepted", status, reason, within=WITHIN)
    return str(c["message"])


@pytest.mark.parametrize(
    "order",
    [
        ("gateway", "route", "pool", "model"),
        ("gateway", "route", "model", "pool"),
        ("gateway", "model", "pool", "route"),
        ("model", "pool", "gateway", "route"),
        ("pool", "model", "route", "gateway"),
    ],
)
async def test_a_model_is_accepted_whatever_the_creation_order(aigw: Aigw, order: tuple[str, ...]) -> None:
    aigw.dns.set_records({f"m.{aigw.ns}.svc.cluster.local": ["10.14.0.1"]})
    p = parts()
    for name in order:
        await aigw.apply(p[name])
        if name == "model" and "pool" not in order[: order.index("model")]:
            msg = await accepted(aigw, "False", "PoolNotFound")
            assert f"InferencePool {aigw.ns}/p not found" in msg
    msg = await accepted(aigw, "True")
    assert f"InferencePool {aigw.ns}/p" in msg


async def test_a_model_whose_pool_goes_is_not_served_any_more(aigw: Aigw) -> None:
    aigw.dns.set_records({f"m.{aigw.ns}.svc.cluster.local": ["10.14.0.1"]})
    p = parts()
    await aigw.apply(docs(p["gateway"], p["route"], p["pool"], p["model"]))
    await accepted(aigw, "True")
    cfg = await aigw.config_when("gw", lambda c: len(c.pools) == 1)
    assert _models(cfg) == ["llama"]

    await aigw.delete("inferencepool.inference.networking.x-k8s.io", "p")  # the route still names it
    msg = await accepted(aigw, "False", "PoolNotFound")
    assert "served by" not in msg
    cfg = await aigw.config_when("gw", lambda c: not c.pools)
    assert cfg.rules[0].backend_refs == []
    assert _models(cfg) == []  # the rule is kept (its requests get 404), its model is not listed

    await aigw.apply(p["pool"])
    await accepted(aigw, "True")
    cfg = await aigw.config_when("gw", lambda c: len(c.pools) == 1)
    assert _models(cfg) == ["llama"]

    # and with no route left at all, the model still says why it is not served
    await aigw.delete("aigatewayroute", "r")
    await aigw.delete("inferencepool.inference.networking.x-k8s.io", "p")
    await accepted(aigw, "False", "PoolNotFound")


def _models(cfg: FilterConfig) -> list[str]:
    """What the ext_proc answers on ``/v1/models`` for this config."""
    snap = compile_config(cfg, content_hash="", base_dir=Path("."))
    return [m["id"] for m in orjson.loads(snap.models_body)["data"]]
