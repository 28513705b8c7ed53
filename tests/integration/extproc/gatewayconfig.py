"""The filter config the integration tests start from: two OpenAI backends, one weighted split, a pool."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

UPSTREAMS = ["a", "b", "p1", "p2", "p3"]
BACKENDS = {"openai-a.default": "a", "openai-b.default": "b", "azure.default": "b"}
"""Envoy clusters by backend name; ``azure.default`` is only in configs that tests apply."""
POOL = "vllm-pool.default"


def model_match(model: str, **extra: str) -> dict[str, Any]:
    return {
        "headers": [
            {"name": "x-ai-eg-model", "value": model},
            *({"name": k, "value": v} for k, v in extra.items()),
        ]
    }


def base_config(ports: Mapping[str, int]) -> dict[str, Any]:
    """Models: ``gpt-a`` -> a; ``gpt-split`` -> a:1 / b:3; ``gpt-team`` with header x-team=blue -> b (both
    headers of one match must hold); pool models ``llama`` (targets llama-base:80 / llama-lora:20) and
    ``mistral`` (no targets), plus ``ghost`` routed to the pool without an InferenceModel."""
    return {
        "version": "v1",
        "uuid": "base",
        "rules": [
            {
                "route": "default/r-a",
                "matches": [model_match("gpt-a")],
                "backendRefs": [{"name": "openai-a.default"}],
            },
            {
                "route": "default/r-split",
                "matches": [model_match("gpt-split")],
                "backendRefs": [
                    {"name": "openai-a.default", "weight": 1},
                    {"name": "openai-b.default", "weight": 3},
                ],
            },
            {
                "route": "default/r-team",
                "matches": [model_match("gpt-team", **{"x-team": "blue"})],
                "backendRefs": [{"name": "openai-b.default"}],
            },
            {
                "route": "default/r-pool",
                "matches": [model_match("llama"), model_match("mistral"), model_match("ghost")],
                "backendRefs": [{"kind": "InferencePool", "name": POOL}],
            },
        ],
        "backends": [
            {"name": "openai-a.default", "schema": {"name": "OpenAI"}},
            {"name": "openai-b.default", "schema": {"name": "OpenAI"}},
        ],
        "pools": [
            {
                "name": POOL,
                "members": [
                    {
                        "name": "vllm.default",
                        "schema": {"name": "OpenAI"},
                        "endpoints": [{"ip": "127.0.0.1", "port": ports[p]} for p in ("p1", "p2", "p3")],
                    }
                ],
                "models": [
                    {
                        "modelName": "llama",
                        "criticality": "Critical",
                        "targetModels": [
                            {"name": "llama-base", "weight": 80},
                            {"name": "llama-lora", "weight": 20},
                        ],
                    },
                    {"modelName": "mistral"},
                ],
            }
        ],
        "llmRequestCosts": [
            {"route": "default/r-a", "metadataKey": "input", "type": "InputToken"},
            {"route": "default/r-a", "metadataKey": "output", "type": "OutputToken"},
            {"route": "default/r-a", "metadataKey": "total", "type": "TotalToken"},
        ],
    }
