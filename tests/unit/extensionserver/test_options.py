"""Options validation and address parsing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from api.headers import ORIGINAL_DST_HEADER
from controller.extensionserver import ExtensionServerOptions, parse_address


def test_defaults() -> None:
    opts = ExtensionServerOptions()
    assert opts.original_dst_header == ORIGINAL_DST_HEADER
    assert opts.connect_timeout == timedelta(seconds=10)
    assert opts.route_timeout == timedelta(seconds=60)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"original_dst_header": "X-Upper"},
        {"original_dst_header": ""},
        {"selected_backend_header": "has space"},
        {"cluster_name": ""},
        {"connect_timeout": timedelta(0)},
        {"route_timeout": timedelta(seconds=-1)},
        {"max_message_bytes": 1024},
    ],
)
def test_invalid_options_are_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        ExtensionServerOptions(**kwargs)


def test_zero_route_timeout_is_allowed() -> None:
    assert ExtensionServerOptions(route_timeout=timedelta(0)).route_timeout == timedelta(0)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:1063", ("127.0.0.1:1063", None)),
        ("0.0.0.0:0", ("0.0.0.0:0", None)),
        ("localhost:1061", ("localhost:1061", None)),
        ("[::1]:1063", ("[::1]:1063", None)),
        ("unix:///run/aigw/ext.sock", ("unix:///run/aigw/ext.sock", "/run/aigw/ext.sock")),
    ],
)
def test_parse_address(address: str, expected: tuple[str, str | None]) -> None:
    assert parse_address(address) == expected


@pytest.mark.parametrize(
    "address",
    [
        "1063",
        ":1063",
        "host:",
        "host:port",
        "host:70000",
        "::1:1063",
        "unix:relative.sock",
        "unix://rel/x.sock",
    ],
)
def test_parse_address_rejects(address: str) -> None:
    with pytest.raises(ValueError):
        parse_address(address)
