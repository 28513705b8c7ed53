"""``config/samples`` applied to the real API server: every object ends Accepted=True."""

from __future__ import annotations

from pathlib import Path

from controller.gateway import kinds
from tests.integration.controller.conftest import Aigw

SAMPLES = Path(__file__).resolve().parents[3] / "config" / "samples"


async def test_samples_are_accepted(aigw: Aigw) -> None:
    ns = aigw.ns
    aigw.dns.set_records({
        f"my-backend-a.{ns}.svc.cluster.local": ["10.1.0.1", "10.1.0.2"],
        f"my-backend-b.{ns}.svc.cluster.local": ["10.1.0.3"],
    })  # fmt: skip
    for f in ("gateway.yaml", "basic.yaml", "inference_extension.yaml"):
        await aigw.apply((SAMPLES / f).read_text())
    for res, name in [
        (kinds.AIGATEWAYROUTES, "basic"),
        (kinds.AIGATEWAYROUTES, "inference-extension"),
        (kinds.AISERVICEBACKENDS, "openai"),
        (kinds.AISERVICEBACKENDS, "my-backend-a"),
        (kinds.AISERVICEBACKENDS, "my-backend-b"),
        (kinds.AISERVICEBACKENDS, "overflow"),
        (kinds.BACKENDSECURITYPOLICIES, "openai-apikey"),
        (kinds.INFERENCEMODELS, "mistral"),
        (kinds.INFERENCEMODELS, "llama3-batch"),
    ]:
        await aigw.wait_condition(res, name, "Accepted", "True")
        if res is not kinds.INFERENCEMODELS:
            await aigw.wait_condition(res, name, "ResolvedRefs", "True")
    await aigw.wait_condition(kinds.INFERENCEPOOLS, "my-pool", "Accepted", "True", parent=0)
    await aigw.wait_condition(kinds.INFERENCEPOOLS, "my-pool", "ResolvedRefs", "True", parent=0)
    cfg = await aigw.config_when("ai-gateway", lambda c: len(c.rules) == 2)
    assert [b.name for b in cfg.backends] == [f"openai.{ns}", f"overflow.{ns}"]
    (pool,) = cfg.pools
    (pool_ref,) = next(r for r in cfg.rules if r.backend_refs[0].kind == "InferencePool").backend_refs
    assert pool_ref.fallback is not None and pool_ref.fallback.name == f"overflow.{ns}"
    assert sorted(e.ip for m in pool.members for e in m.endpoints) == ["10.1.0.1", "10.1.0.2", "10.1.0.3"]
    assert {m.model_name for m in pool.models} == {"mistral:latest", "llama3-batch"}
    out = await aigw.kubectl("-n", ns, "get", "aigatewayroutes")
    assert "True" in out
