"""``aigw-controller --help`` says each default once, and never ``(default: None)``."""

from __future__ import annotations

import re

import pytest

from controller.main import parse_args


def test_help_states_each_default_once_and_never_none(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in text
    assert "(default: False)" not in text
    # one option's help per chunk: an option at the start of a line begins it
    for chunk in re.split(r" (?=--[a-z])", text.split("options:", 1)[1]):
        assert chunk.count("default") <= 1, chunk
    assert "--concurrent-reconciles CONCURRENT_RECONCILES Gateways reconciled at once (default: 4)" in text
