"""Validation errors that name the field path the way the API server does (``spec.rules[0].matches``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import ValidationError


@dataclass(frozen=True)
class FieldError:
    """One broken rule at one field path."""

    path: str
    """Kubernetes-style path, e.g. ``spec.rules[0].backendRefs[1].kind``; empty for the object itself."""
    message: str
    """What rule was broken, e.g. ``currently only exact match is supported``."""

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class InvalidObjectError(ValueError):
    """An object that does not conform to its kind's schema or rules. ``errors`` lists every problem."""

    def __init__(self, what: str, errors: Sequence[FieldError]) -> None:
        self.what = what
        self.errors = tuple(errors)
        super().__init__(f"{what} is invalid: " + "; ".join(str(e) for e in self.errors))


def field_path(loc: Sequence[int | str]) -> str:
    """Join a pydantic error location into a Kubernetes field path: ``("a", 0, "b")`` -> ``a[0].b``."""
    path = ""
    for part in loc:
        if part == "[key]":
            continue  # pydantic's marker for "the key itself" of a map entry; the key is already in the path
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path


_PYDANTIC_PREFIXES = ("Value error, ", "Assertion failed, ")


def field_errors(error: ValidationError) -> list[FieldError]:
    """The pydantic error as field errors, with pydantic's ``Value error,`` prefixes stripped."""
    result = []
    for e in error.errors(include_url=False):
        message = e["msg"]
        for prefix in _PYDANTIC_PREFIXES:
            message = message.removeprefix(prefix)
        result.append(FieldError(field_path(e["loc"]), message))
    return result
