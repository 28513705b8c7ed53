"""Every parameter of the simulator, read from one YAML file. Unknown keys are errors, so a typo never
hides."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class SimConfigError(ValueError):
    """The simulator's YAML file is unreadable or invalid; the message names the file and the field."""


class SimConfig(BaseModel):
    """A model server's capacity and speed. Times are in milliseconds.

    One engine step runs the whole batch once: each running request gains one token, and requests admitted in
    that step are prefilled first. Its duration is
    ``step_base_ms + decode_ms_per_seq * decoding + prefill_ms_per_token * uncached prompt tokens
    + lora_load_ms * adapters loaded``, so prefill grows with uncached prompt tokens and decode with batch
    size.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(default="sim-llm", min_length=1, description="the base model's name")
    accept_any_model: bool = Field(
        default=False, description="answer any model name that is not an adapter as the base model (demos)"
    )
    lora_adapters: tuple[str, ...] = Field(
        default=(), description="adapter names a request's `model` may name; any other model answers 404"
    )
    seed: int = Field(default=0, description="seeds output lengths (when max_tokens is absent) and texts")
    max_num_seqs: int = Field(default=16, ge=1, description="at most this many requests run in one batch")
    max_num_batched_tokens: int = Field(
        default=4096, ge=16, description="prefill tokens admitted per step (the first admission always fits)"
    )
    kv_blocks: int = Field(
        default=1024, ge=1, description="KV-cache blocks (vllm:cache_config_info num_gpu_blocks)"
    )
    block_size: int = Field(
        default=16, ge=1, description="tokens per KV-cache block; also the prefix-hash unit"
    )
    watermark_blocks: int = Field(default=0, ge=0, description="blocks kept free when admitting a request")
    enable_prefix_caching: bool = True
    max_loras: int = Field(default=4, ge=0, description="adapter slots; an adapter needs one to run")
    lora_load_ms: float = Field(default=50.0, ge=0, description="added to the step that loads an adapter")
    step_base_ms: float = Field(default=10.0, ge=0, description="fixed cost of every engine step")
    decode_ms_per_seq: float = Field(default=1.0, ge=0, description="added per request decoding in the step")
    prefill_ms_per_token: float = Field(default=0.1, ge=0, description="added per uncached prompt token")
    default_max_tokens_min: int = Field(
        default=16, ge=1, description="output length range without max_tokens"
    )
    default_max_tokens_max: int = Field(default=128, ge=1)
    max_model_len: int = Field(default=8192, ge=2, description="prompt + output tokens; longer answers 400")
    stream_tokens_per_chunk: int = Field(
        default=1, ge=1, description="tokens per SSE chunk after the first (the first token is sent alone)"
    )

    @model_validator(mode="after")
    def _check(self) -> SimConfig:
        if self.default_max_tokens_max < self.default_max_tokens_min:
            raise ValueError("default_max_tokens_max must be >= default_max_tokens_min")
        if self.model in self.lora_adapters:
            raise ValueError(f"lora_adapters must not contain the base model {self.model!r}")
        return self


def load_config(path: Path) -> SimConfig:
    """Read a SimConfig from a YAML mapping; raise SimConfigError naming the file and the bad field."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise SimConfigError(f"{path}: {e}") from e
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SimConfigError(f"{path}: expected a mapping of simulator parameters, got {type(raw).__name__}")
    try:
        return SimConfig.model_validate(raw)
    except ValidationError as e:
        errors = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in e.errors()
        )
        raise SimConfigError(f"{path}: {errors}") from e
