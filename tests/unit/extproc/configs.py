"""Filter configs and snapshots for the ext_proc tests, built in memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from extproc.snapshot import Snapshot, compile_bytes


def snapshot_of(config: dict[str, Any], *, base_dir: Path = Path(".")) -> Snapshot:
    return compile_bytes(yaml.safe_dump(config).encode(), base_dir=base_dir)


def simple_config(**overrides: Any) -> dict[str, Any]:
    """Model ``m1`` -> backend ``b1.ns``; pool model ``p-model`` (targets t1:3, t2:1) on pool ``pool.ns``."""
    cfg: dict[str, Any] = {
        "version": "v1",
        "rules": [
            {
                "route": "ns/r1",
                "matches": [{"headers": [{"name": "x-ai-eg-model", "value": "m1"}]}],
                "backendRefs": [{"name": "b1.ns"}],
            },
            {
                "route": "ns/pool",
                "matches": [
                    {"headers": [{"name": "x-ai-eg-model", "value": "p-model"}]},
                    {"headers": [{"name": "x-ai-eg-model", "value": "ghost"}]},
                ],
                "backendRefs": [{"kind": "InferencePool", "name": "pool.ns"}],
            },
        ],
        "backends": [{"name": "b1.ns", "schema": {"name": "OpenAI"}}],
        "pools": [
            {
                "name": "pool.ns",
                "members": [
                    {
                        "name": "m.ns",
                        "schema": {"name": "OpenAI"},
                        "endpoints": [
                            {"ip": "10.0.0.1", "port": 8000},
                            {"ip": "10.0.0.2", "port": 8000, "hostname": "pod2.example"},
                        ],
                    }
                ],
                "models": [
                    {
                        "modelName": "p-model",
                        "targetModels": [{"name": "t1", "weight": 3}, {"name": "t2", "weight": 1}],
                    }
                ],
            }
        ],
        "llmRequestCosts": [{"route": "ns/r1", "metadataKey": "tokens", "type": "TotalToken"}],
    }
    cfg.update(overrides)
    return cfg


def pool_config(
    endpoints: list[tuple[str, int]],
    *,
    models: list[dict[str, Any]] | None = None,
    picker: dict[str, Any] | None = None,
    name: str = "p.ns",
) -> dict[str, Any]:
    """One rule sending every request to pool ``name`` with ``endpoints`` (ip, port), its InferenceModels
    and an optional picker section."""
    pool: dict[str, Any] = {
        "name": name,
        "members": [
            {
                "name": "m.ns",
                "schema": {"name": "OpenAI"},
                "endpoints": [{"ip": i, "port": p} for i, p in endpoints],
            }
        ],
        "models": models or [],
    }
    if picker is not None:
        pool["picker"] = picker
    return {
        "version": "v1",
        "rules": [{"route": "ns/r", "backendRefs": [{"kind": "InferencePool", "name": name}]}],
        "pools": [pool],
    }
