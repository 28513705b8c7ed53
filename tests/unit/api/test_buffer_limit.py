"""``--max-body-bytes``: one rule (``api.gatewayapi.buffer_limit``) for the controller and ``aigw run``."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import pytest

from aigw.cli import build_parser
from api.gatewayapi import MIN_BUFFER_LIMIT_BYTES, buffer_limit
from controller.main import parse_args


def _aigw(value: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", "--max-body-bytes", value])


def _controller(value: str) -> argparse.Namespace:
    return parse_args(["--max-body-bytes", value])


@pytest.mark.parametrize(
    ("value", "size"), [("32Ki", 32768), ("32768", 32768), ("50Mi", 50 << 20), ("1Gi", 1 << 30)]
)
def test_sizes_at_or_above_the_minimum_are_bytes(value: str, size: int) -> None:
    assert buffer_limit(value) == size


@pytest.mark.parametrize("value", ["32767", "1Ki", "31Ki", "0", "-1", "1.5Mi", "50MB", ""])
def test_sizes_below_the_minimum_or_malformed_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match=repr(value)):
        buffer_limit(value)


@pytest.mark.parametrize("parse", [_aigw, _controller], ids=["aigw-run", "controller"])
def test_both_command_lines_apply_the_same_rule(
    parse: Callable[[str], argparse.Namespace], capsys: pytest.CaptureFixture[str]
) -> None:
    assert parse("32Ki").max_body_bytes == MIN_BUFFER_LIMIT_BYTES
    with pytest.raises(SystemExit) as exc:
        parse("16Ki")
    assert exc.value.code == 2
    assert "at least 32Ki" in capsys.readouterr().err
