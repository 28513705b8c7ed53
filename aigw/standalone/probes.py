"""Small loopback probes: is a port free, is a server up, what did Envoy and the ext_proc apply."""

from __future__ import annotations

import re
import socket
import urllib.error
import urllib.request

from aigw.standalone.envoyconfig import Address


def port_in_use(address: Address) -> bool:
    """True when something already listens on ``address`` (a bind would fail)."""
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address.host, address.port))
        except OSError:
            return True
    return False


def http_get(url: str, *, timeout: float = 1.0) -> tuple[int, str] | None:
    """``(status, body)`` of a GET, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status), resp.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return int(e.code), e.read().decode(errors="replace")
    except (OSError, ValueError):
        return None


def tcp_open(address: Address, *, timeout: float = 0.5) -> bool:
    """True when a TCP connection to ``address`` succeeds."""
    try:
        with socket.create_connection((address.host, address.port), timeout=timeout):
            return True
    except OSError:
        return False


def envoy_ready(admin: Address) -> bool:
    """Envoy's admin ``/ready`` says LIVE."""
    got = http_get(f"http://{admin.host}:{admin.port}/ready")
    return got is not None and got[0] == 200 and got[1].strip() == "LIVE"


XDS_COUNTERS = (
    "cluster_manager.cds.update_success",
    "cluster_manager.cds.update_rejected",
    "http.gateway.rds.aigw.update_success",
    "http.gateway.rds.aigw.update_rejected",
)


def envoy_counters(admin: Address) -> dict[str, int]:
    """The xDS update counters (``XDS_COUNTERS``) from Envoy's admin ``/stats``; empty when unreachable."""
    got = http_get(f"http://{admin.host}:{admin.port}/stats?filter=update_(success|rejected)$")
    out: dict[str, int] = {}
    if got is None or got[0] != 200:
        return out
    for line in got[1].splitlines():
        name, _, value = line.partition(": ")
        if name in XDS_COUNTERS and value.strip().isdigit():
            out[name] = int(value)
    return out


_CONFIG_INFO = re.compile(r'^aigw_extproc_config_info\{[^}]*uuid="(?P<uuid>[^"]*)"[^}]*\} 1(\.0)?$', re.M)


_RELOADS = re.compile(r'^aigw_extproc_config_reloads_total\{result="(?:ok|error)"\} (?P<n>[0-9.e+]+)$', re.M)
_LAST_FAILED = re.compile(r"^aigw_extproc_config_last_load_failed (?P<v>[0-9.e+]+)$", re.M)


def extproc_reloads(metrics: Address) -> tuple[int, bool] | None:
    """The ext_proc's verdict so far, from its metrics: how many times it tried to load the filter config
    (and its credential files), and whether the last attempt failed (it then serves the one before). None
    when unknown."""
    got = http_get(f"http://{metrics.host}:{metrics.port}/metrics")
    if got is None or got[0] != 200:
        return None
    failed = _LAST_FAILED.search(got[1])
    attempts = sum(int(float(m.group("n"))) for m in _RELOADS.finditer(got[1]))
    return (attempts, failed is not None and float(failed.group("v")) == 1.0)


def extproc_config_uuid(metrics: Address) -> str | None:
    """The ``uuid`` of the filter config the ext_proc serves (from its metrics), or None when unknown."""
    got = http_get(f"http://{metrics.host}:{metrics.port}/metrics")
    if got is None or got[0] != 200:
        return None
    m = _CONFIG_INFO.search(got[1])
    return m.group("uuid") if m else None
