"""OpenAI -> Azure OpenAI: the same bodies, under ``/openai/deployments/{deployment}/...?api-version=``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final
from urllib.parse import quote

SUFFIXES: Final[Mapping[str, str]] = {
    "chat": "chat/completions",
    "completion": "completions",
    "embeddings": "embeddings",
}
"""Operation (as the processor names it) -> path after the deployment."""


def deployment_path(*, operation: str, deployment: str, api_version: str | None) -> str:
    """The Azure path for ``operation``; the deployment is the (possibly rewritten) model name."""
    query = f"?api-version={quote(api_version, safe='')}" if api_version else ""
    return f"/openai/deployments/{quote(deployment, safe='')}/{SUFFIXES[operation]}{query}"
