"""Rule matching: the first rule with a matching match wins; a match needs all its headers to match."""

from __future__ import annotations

import random
from collections.abc import Mapping

from extproc.snapshot import Pool, Rule, Snapshot, Upstream


def match_rule(snapshot: Snapshot, headers: Mapping[str, str]) -> Rule | None:
    """The first rule of ``snapshot`` that matches ``headers`` (lower-case names), or None.

    A rule without matches matches every request. A match without headers matches every request. Header values
    compare exactly; every header of a match is checked (not just the first).
    """
    for rule in snapshot.rules:
        if not rule.matches:
            return rule
        for match in rule.matches:
            if all(headers.get(name) == value for name, value in match):
                return rule
    return None


def pick_backend(rule: Rule, *, rng: random.Random) -> Upstream | Pool | None:
    """A backend of ``rule`` drawn by weight, or None when the rule has no backend."""
    if not len(rule.backends):
        return None
    return rule.backends.pick(rng=rng)
