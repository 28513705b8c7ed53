"""What ``aigw run`` prints once it serves: where, which models, and curl commands ready to paste."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from api import headers
from api.filterconfig import BackendKind, FilterConfig

if TYPE_CHECKING:
    from aigw.standalone.envoyconfig import Address
    from aigw.standalone.translate import DemoUpstream, Translation


def routed_models(cfg: FilterConfig) -> list[tuple[str, str]]:
    """``(model, where it goes)`` for every exact ``x-ai-eg-model`` value a rule matches, once per model: the
    first rule's (the ext_proc takes the first rule that matches; see ``shadowed_matches``)."""
    out: list[tuple[str, str]] = []
    for rule in cfg.rules:
        targets = ", ".join(
            f"{r.kind.value} {r.name}"
            + (f" (fallback {r.fallback.kind.value} {r.fallback.name})" if r.fallback else "")
            for r in rule.backend_refs
        )
        for match in rule.matches:
            for h in match.headers:
                if h.name == headers.MODEL_NAME_HEADER and all(m != h.value for m, _ in out):
                    out.append((h.value, targets or "no usable backend"))
    return out


def shadowed_matches(cfg: FilterConfig) -> list[str]:
    """One warning per match no request can ever reach: an earlier rule (the ext_proc takes the first rule
    that matches, and rules come oldest route first) has a match whose headers are a subset of its headers,
    e.g. a second route claiming a model another route already serves."""
    earlier: list[tuple[str, frozenset[tuple[str, str]]]] = []
    out: list[str] = []
    for rule in cfg.rules:
        sets = [frozenset((h.name.lower(), h.value) for h in m.headers) for m in rule.matches] or [
            frozenset()
        ]
        for hs in sets:
            winner = next((route for route, seen in earlier if seen <= hs), None)
            if winner is not None:
                what = ", ".join(f"{k}={v}" for k, v in sorted(hs)) or "every request"
                out.append(
                    f"AIGatewayRoute {rule.route}: the match {what} is never used: "
                    f"an earlier rule of AIGatewayRoute {winner} (older, or first in its route) "
                    "takes those requests"
                )
        earlier.extend((rule.route, hs) for hs in sets)
    return out


def example_model(cfg: FilterConfig) -> str:
    """A model name a request can use: one routed to a pool if any, else any routed model."""
    models = routed_models(cfg)
    for model, where in models:
        if BackendKind.INFERENCE_POOL.value in where:
            return model
    if models:
        return models[0][0]
    for pool in cfg.pools:
        for m in pool.models:
            return m.model_name
    return "your-model"


def ready_banner(
    *,
    translation: Translation,
    listen: Address,
    admin: Address,
    inputs: Sequence[Path],
    workdir: Path,
    upstreams: Sequence[DemoUpstream],
) -> str:
    """The multi-line message printed when the gateway listening on ``listen`` (Envoy admin on ``admin``),
    configured from ``inputs``, is ready."""
    cfg = translation.filter_config
    base = f"http://{_host(listen.host)}:{listen.port}"
    body = '{"model": "' + example_model(cfg) + '", "messages": [{"role": "user", "content": "Hello!"}]}'
    lines = [
        "",
        f"aigw is serving Gateway {translation.gateway} on {base}  (Envoy admin: "
        f"http://{_host(admin.host)}:{admin.port})",
        f"  inputs: {' '.join(str(p) for p in inputs)}",
        f"  generated files: {workdir}",
    ]
    models = routed_models(cfg)
    if models:
        lines.append("  models:")
        lines.extend(f"    {m:<24} -> {where}" for m, where in models)
    if upstreams:
        lines.append(
            "  demo upstreams: "
            + ", ".join(f"{u.name} ({u.address.host}:{u.address.port})" for u in upstreams)
        )
    lines += [
        "",
        "Try it:",
        f"  curl -s {base}/v1/chat/completions -H 'content-type: application/json' \\",
        f"    -d {shlex.quote(body)}",
        f"  curl -s {base}/v1/models",
        "",
        "Edit an input file and the gateway reloads it; Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def _host(host: str) -> str:
    if host in ("0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
