"""The filter config survives the trip controller -> YAML -> ext_proc unchanged, and rejects what it must."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from api import filterconfig as fc
from api import headers


def _config(weights: list[int | None] | None = None) -> fc.FilterConfig:
    targets = [fc.TargetModel(name=f"lora-{i}", weight=w) for i, w in enumerate(weights or [])]
    return fc.FilterConfig(
        gateway="default/ai-gateway",
        uuid="abc",
        rules=[
            fc.RouteRule(
                route="default/basic",
                matches=[fc.RouteMatch(headers=[fc.HeaderMatch(name="X-AI-EG-Model", value="gpt-4o-mini")])],
                backend_refs=[
                    fc.BackendRef(name="openai.default", weight=3),
                    fc.BackendRef(
                        kind=fc.BackendKind.INFERENCE_POOL,
                        name="my-pool.default",
                        fallback=fc.Fallback(name="openai.default", model_name_override="gpt-4o-mini"),
                    ),
                ],
            )
        ],
        backends=[
            fc.Backend(
                name="openai.default",
                schema_=fc.VersionedAPISchema(name=fc.APISchemaName.OPENAI),
                auth=fc.BackendAuth(api_key=fc.APIKeyAuth(filename="/etc/bsp/apiKey")),
            )
        ],
        pools=[
            fc.InferencePool(
                name="my-pool.default",
                members=[
                    fc.PoolMember(
                        name="my-backend-a.default",
                        schema_=fc.VersionedAPISchema(name=fc.APISchemaName.OPENAI),
                        endpoints=[
                            fc.Endpoint(ip="10.0.0.1", port=8080, hostname="my-backend-a.default.svc"),
                            fc.Endpoint(ip="fd00::1", port=8080),
                        ],
                    )
                ],
                models=[
                    fc.InferenceModel(
                        model_name="mistral:latest",
                        criticality=fc.Criticality.CRITICAL,
                        target_models=targets,
                    )
                ],
            )
        ],
        llm_request_costs=[
            fc.LLMRequestCost(route="default/basic", metadata_key="tokens", type=fc.CostType.TOTAL_TOKEN)
        ],
    )


def _round_trip(config: fc.FilterConfig) -> fc.FilterConfig:
    text = yaml.safe_dump(config.to_json_dict(), sort_keys=False)
    return fc.FilterConfig.model_validate(yaml.safe_load(text))


def test_round_trip_through_yaml_is_lossless() -> None:
    config = _config([80, 20])
    assert _round_trip(config) == config


def test_defaults_carry_the_shared_header_names() -> None:
    doc = fc.FilterConfig().to_json_dict()
    assert doc["version"] == fc.FILTER_CONFIG_VERSION
    assert doc["modelNameHeaderKey"] == headers.MODEL_NAME_HEADER
    assert doc["selectedBackendHeaderKey"] == headers.SELECTED_BACKEND_HEADER
    assert doc["originalDestinationHeaderKey"] == headers.ORIGINAL_DST_HEADER
    assert doc["schema"] == {"name": "OpenAI"}


def test_endpoints_are_precomputed_addresses() -> None:
    endpoints = _config().pools[0].members[0].endpoints
    assert [e.address for e in endpoints] == ["10.0.0.1:8080", "[fd00::1]:8080"]
    assert endpoints[0].hostname == "my-backend-a.default.svc"


def test_header_names_are_lowercased() -> None:
    assert _config().rules[0].matches[0].headers[0].name == "x-ai-eg-model"


@given(st.lists(st.integers(min_value=1, max_value=1_000_000) | st.none(), max_size=10))
def test_weights_are_all_or_none_like_the_crd(weights: list[int | None]) -> None:
    mixed = len({w is None for w in weights}) > 1
    if mixed:
        with pytest.raises(
            ValidationError, match="Weights should be set for all models, or none of the models"
        ):
            _config(weights)
    else:
        assert _round_trip(_config(weights)) == _config(weights)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(version="v2"), "version"),
        (lambda d: d["rules"][0]["backendRefs"][0].update(name="missing.default"), "is not defined"),
        (lambda d: d["pools"][0]["members"][0]["endpoints"][0].update(ip="not-an-ip"), "ip"),
        (lambda d: d["backends"][0].update(auth={}), "exactly one of apiKey, aws or azure"),
        (lambda d: d["llmRequestCosts"][0].update(type="CEL"), "cel must be set exactly when type is CEL"),
        (lambda d: d["pools"][0]["models"].append(dict(d["pools"][0]["models"][0])), "duplicate"),
        (lambda d: d.update(unknownKey=1), "unknownKey"),
        (
            lambda d: d["rules"][0]["backendRefs"][1]["fallback"].update(name="gone.default"),
            r"backendRefs\[1\]\.fallback: AIServiceBackend 'gone.default' is not defined",
        ),
        (
            lambda d: d["rules"][0]["backendRefs"][0].update(fallback={"name": "openai.default"}),
            "fallback is only allowed on an InferencePool reference",
        ),
    ],
)
def test_invalid_documents_are_rejected(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    doc = _config().to_json_dict()
    mutate(doc)
    with pytest.raises(ValidationError, match=message):
        fc.FilterConfig.model_validate(doc)
