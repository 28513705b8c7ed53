"""Workloads (YAML) and the fixed traces made from them.

A workload says what requests look like: prompt and output lengths (log-normal, clipped), a share of requests
starting with one of K shared prefixes (system prompts), a share naming a LoRA adapter (Zipf-skewed), and a
criticality mix. ``make_trace`` turns it into Poisson arrivals at a rate, from a seed: every picker replays
the identical list (times, bodies, headers).

Prompt words are 4 characters, so each is exactly one token of the simulator's tokenizer.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

OBJECTIVE_HEADER = "x-gateway-inference-objective"
"""The Inference Extension's header naming a request's InferenceObjective (its priority)."""


Criticality = Literal["critical", "standard", "sheddable"]
"""Also the InferenceObjective names the EPP harness creates (priority 1, 0, -1)."""


def _all_standard() -> dict[Criticality, float]:
    return {"standard": 1.0}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Length(_Strict):
    """Log-normal with this median and shape ``sigma``, clipped to [min, max] tokens."""

    median: Annotated[float, Field(gt=0)]
    sigma: Annotated[float, Field(ge=0)] = 0.5
    min: Annotated[int, Field(ge=1)] = 1
    max: Annotated[int, Field(ge=1)] = 4096

    def draw(self, rng: random.Random) -> int:
        value = rng.lognormvariate(math.log(self.median), self.sigma) if self.sigma else self.median
        return max(self.min, min(self.max, round(value)))


class Prefixes(_Strict):
    """``share`` of requests start with one of ``count`` shared prefixes of ``tokens`` tokens (uniform)."""

    count: Annotated[int, Field(ge=0, le=400)] = 0
    tokens: Annotated[int, Field(ge=0)] = 0
    share: Annotated[float, Field(ge=0, le=1)] = 0.0


class Loras(_Strict):
    """``share`` of requests name an adapter; adapter ``k`` (from 1) has weight ``1 / k**zipf``."""

    adapters: list[str] = Field(default_factory=list)
    share: Annotated[float, Field(ge=0, le=1)] = 0.0
    zipf: Annotated[float, Field(ge=0)] = 1.0


class Workload(_Strict):
    name: Annotated[str, Field(min_length=1)]
    description: str = ""
    model: Annotated[str, Field(min_length=1)] = "sim-llm"
    api: Literal["chat", "completions"] = "chat"
    prompt_tokens: Length
    output_tokens: Length
    prefixes: Prefixes = Field(default_factory=Prefixes)
    loras: Loras = Field(default_factory=Loras)
    criticality: dict[Criticality, Annotated[float, Field(ge=0)]] = Field(default_factory=_all_standard)

    @model_validator(mode="after")
    def _check(self) -> Workload:
        if self.loras.share > 0 and not self.loras.adapters:
            raise ValueError("loras.share > 0 needs loras.adapters")
        if self.prefixes.share > 0 and (self.prefixes.count == 0 or self.prefixes.tokens == 0):
            raise ValueError("prefixes.share > 0 needs prefixes.count and prefixes.tokens")
        if sum(self.criticality.values()) <= 0:
            raise ValueError("criticality weights must not all be 0")
        return self

    @property
    def models(self) -> list[str]:
        """Every model name a request of this workload may carry."""
        return [self.model, *self.loras.adapters]


class WorkloadError(ValueError):
    """A workload file is unreadable or invalid; the message names the file and the field."""


def load_workload(path: Path) -> Workload:
    try:
        raw = yaml.safe_load(path.read_text())
        return Workload.model_validate(raw)
    except (OSError, yaml.YAMLError) as e:
        raise WorkloadError(f"{path}: {e}") from e
    except ValidationError as e:
        errors = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in e.errors()
        )
        raise WorkloadError(f"{path}: {errors}") from e


@dataclass(frozen=True, slots=True)
class TraceItem:
    """One request of a trace: when (seconds from the start), where, what, with which headers."""

    at: float
    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    model: str
    criticality: str
    prompt_tokens: int
    max_tokens: int


def _words(rng: random.Random, n: int) -> list[str]:
    return [f"{rng.getrandbits(16):04x}" for _ in range(n)]


_NOT_HEX = "ghijklmnopqrstuvwxyz"


def _prefix_words(k: int, n: int) -> list[str]:
    # two letters naming the prefix, then the position in hex: 4 characters, never one of the body's hex words
    tag = _NOT_HEX[k % 20] + _NOT_HEX[k // 20]
    return [f"{tag}{i % 256:02x}" for i in range(n)]


def make_trace(workload: Workload, *, rate: float, duration: float, seed: int) -> list[TraceItem]:
    """Poisson arrivals at ``rate`` per second for ``duration`` seconds; same arguments, same trace."""
    rng = random.Random(f"{workload.name}/{seed}/{rate:.6f}/{duration:.3f}")
    crit_names = list(workload.criticality)
    crit_weights = [workload.criticality[c] for c in crit_names]
    adapters = workload.loras.adapters
    lora_weights = [1.0 / (k + 1) ** workload.loras.zipf for k in range(len(adapters))]
    prefixes = [" ".join(_prefix_words(k, workload.prefixes.tokens)) for k in range(workload.prefixes.count)]
    items: list[TraceItem] = []
    t = rng.expovariate(rate)
    while t < duration:
        prompt_len = workload.prompt_tokens.draw(rng)
        max_tokens = workload.output_tokens.draw(rng)
        prefix = ""
        if prefixes and rng.random() < workload.prefixes.share:
            prefix = prefixes[rng.randrange(len(prefixes))]
        model = workload.model
        if adapters and rng.random() < workload.loras.share:
            model = rng.choices(adapters, weights=lora_weights)[0]
        crit = rng.choices(crit_names, weights=crit_weights)[0]
        text = " ".join(_words(rng, prompt_len))
        body: dict[str, Any] = {"model": model, "max_tokens": max_tokens, "stream": True}
        body["stream_options"] = {"include_usage": True}
        if workload.api == "chat":
            messages = [{"role": "system", "content": prefix}] if prefix else []
            messages.append({"role": "user", "content": text})
            body["messages"] = messages
            path = "/v1/chat/completions"
        else:
            body["prompt"] = f"{prefix} {text}" if prefix else text
            path = "/v1/completions"
        items.append(
            TraceItem(
                at=t,
                path=path,
                body=body,
                headers={OBJECTIVE_HEADER: crit},
                model=model,
                criticality=crit,
                prompt_tokens=prompt_len + (workload.prefixes.tokens if prefix else 0),
                max_tokens=max_tokens,
            )
        )
        t += rng.expovariate(rate)
    return items
