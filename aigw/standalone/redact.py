"""Credentials out of the children's log lines: Envoy at ``--envoy-log-level debug`` prints every request's
headers (the client's ``authorization`` among them) and the ext_proc's answers, whose dynamic metadata holds
the backend's key.

``Redactor`` is fed one child's lines in order and returns each with credential values replaced by
``<redacted>``: a header pair as Envoy's header dump prints it (``'authorization', 'Bearer sk-...'``), the
value following a credential header's ``key: "api-key"`` line in a protobuf dump, and any ``Bearer <token>``.
"""

from __future__ import annotations

import re
from typing import Final

from api.headers import CREDENTIAL_HEADERS

REDACTED: Final = "<redacted>"
_NAMES: Final = "|".join(re.escape(h) for h in (*CREDENTIAL_HEADERS, "proxy-authorization", "x-api-key"))
_HEADER_PAIR: Final = re.compile(rf"'({_NAMES})', '[^']*'", re.IGNORECASE)
_BEARER: Final = re.compile(r"\b(bearer)\s+[^\s'\"]+", re.IGNORECASE)
_KEY_LINE: Final = re.compile(rf'^\s*key: "({_NAMES})"\s*$', re.IGNORECASE)
_VALUE_LINE: Final = re.compile(r'^(\s*(?:string_value|raw_value|value): )"(.*)"\s*$')
_TEMPLATE: Final = "%DYNAMIC_METADATA("
_LOOKAHEAD: Final = 3
"""Lines after ``key: "<credential header>"`` in which its value may follow (``value {`` comes between)."""


class Redactor:
    """Stateful over one child's lines (a protobuf dump spreads a key and its value over several)."""

    def __init__(self) -> None:
        self._pending = 0

    def __call__(self, line: str) -> str:
        if _KEY_LINE.match(line):
            self._pending = _LOOKAHEAD
            return line
        if self._pending:
            self._pending -= 1
            m = _VALUE_LINE.match(line)
            if m is not None:
                self._pending = 0
                if not m.group(2).startswith(_TEMPLATE):  # our routes' own header templates are no secret
                    return f'{m.group(1)}"{REDACTED}"'
        line = _HEADER_PAIR.sub(lambda m: f"'{m.group(1)}', '{REDACTED}'", line)
        return _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", line)
