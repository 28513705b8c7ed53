"""The controller's DNS resolver against a real DNS server (dnsmasq on loopback)."""

from __future__ import annotations

import asyncio

import pytest

from controller.dns import DnsResolver, parse_nameserver
from tests.realparts.dns import DnsServer


def resolver_for(server: DnsServer, *, timeout: float = 1.0, retry_after: float = 5.0) -> DnsResolver:
    return DnsResolver(nameserver=f"{server.address}:{server.port}", timeout=timeout, retry_after=retry_after)


async def test_a_and_aaaa_with_ttl(dns_server: DnsServer) -> None:
    dns_server.set_records({"model.test": ["10.0.0.2", "10.0.0.1", "fd00::1"]})
    r = resolver_for(dns_server)
    ans = await r.resolve("model.test")
    assert ans.ips == ("10.0.0.1", "10.0.0.2", "fd00::1")
    assert ans.error is None
    assert 0 < ans.ttl <= dns_server.ttl


async def test_cached_until_ttl_then_follows_the_change(dns_server: DnsServer) -> None:
    dns_server.set_records({"model.test": ["10.0.0.1"]})
    r = resolver_for(dns_server)
    assert (await r.resolve("model.test")).ips == ("10.0.0.1",)
    dns_server.set_records({"model.test": ["10.0.0.9"]})
    assert (await r.resolve("model.test")).ips == ("10.0.0.1",)  # still within the TTL
    await asyncio.sleep(dns_server.ttl + 0.2)
    assert (await r.resolve("model.test")).ips == ("10.0.0.9",)


async def test_nxdomain_without_history_is_an_empty_answer(dns_server: DnsServer) -> None:
    r = resolver_for(dns_server, retry_after=0.0)
    ans = await r.resolve("missing.test")
    assert ans.ips == () and ans.error == "NXDOMAIN"
    assert r.lookups.labels("empty")._value.get() == 1
    assert r.lookups.labels("failure")._value.get() == 0


async def test_a_name_scaled_to_zero_loses_its_old_addresses(dns_server: DnsServer) -> None:
    """A headless Service scaled to zero: its name goes (NXDOMAIN). Its old pod IPs may belong to other pods
    by now: they must not keep receiving the member's traffic (this used to keep them forever)."""
    dns_server.set_records({"pods.test": ["10.0.0.1", "10.0.0.2"], "v6only.test": ["fd00::1"]})
    t = [0.0]
    r = resolver_for(dns_server)
    r._now = lambda: t[0]  # step time by hand past the TTL
    assert (await r.resolve("pods.test")).ips == ("10.0.0.1", "10.0.0.2")
    # NODATA for A with an AAAA answer is a normal answer: only the AAAA address
    assert (await r.resolve("v6only.test")).ips == ("fd00::1",)
    dns_server.set_records({"v6only.test": ["fd00::1"]})
    t[0] += dns_server.ttl + 1
    ans = await r.resolve("pods.test")
    assert ans.ips == ()
    assert ans.error == "NXDOMAIN"
    assert ans.ttl > 0
    assert r.lookups.labels("empty")._value.get() == 1
    assert r.lookups.labels("stale")._value.get() == 0
    # scaled back up: the new addresses are served after the negative answer's TTL
    dns_server.set_records({"pods.test": ["10.0.0.7"]})
    t[0] += ans.ttl + 1
    assert (await r.resolve("pods.test")).ips == ("10.0.0.7",)


async def test_outage_keeps_last_known_addresses(dns_server: DnsServer) -> None:
    dns_server.set_records({"model.test": ["10.0.0.1"]})
    t = [0.0]
    r = resolver_for(dns_server, timeout=0.5, retry_after=5.0)
    r._now = lambda: t[0]  # step time by hand: no need to wait out the TTL
    assert (await r.resolve("model.test")).ips == ("10.0.0.1",)
    dns_server.stop()
    t[0] += 3600
    ans = await r.resolve("model.test")
    assert ans.ips == ("10.0.0.1",)
    assert ans.error is not None and ans.ttl == 5.0
    assert r.known("model.test") is not None
    assert r.lookups.labels("stale")._value.get() == 1
    dns_server.start()
    t[0] += 10
    ans = await r.resolve("model.test")
    assert ans.ips == ("10.0.0.1",) and ans.error is None


async def test_concurrent_lookups_share_one_query(dns_server: DnsServer) -> None:
    dns_server.set_records({"model.test": ["10.0.0.1"]})
    r = resolver_for(dns_server)
    answers = await asyncio.gather(*(r.resolve("model.test") for _ in range(20)))
    assert {a.ips for a in answers} == {("10.0.0.1",)}
    assert r.lookups.labels("success")._value.get() == 1


async def test_ip_literals_and_resolve_all(dns_server: DnsServer) -> None:
    dns_server.set_records({"a.test": ["10.0.0.1"]})
    r = resolver_for(dns_server)
    got = await r.resolve_all(["a.test", "192.0.2.1", "a.test"])
    assert got["192.0.2.1"].ips == ("192.0.2.1",)
    assert got["a.test"].ips == ("10.0.0.1",)


def test_parse_nameserver() -> None:
    assert parse_nameserver("10.0.0.10") == ("10.0.0.10", 53)
    assert parse_nameserver("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_nameserver("[::1]:54") == ("::1", 54)
    assert parse_nameserver("fd00::53") == ("fd00::53", 53)
    with pytest.raises(ValueError):
        parse_nameserver("dns.example:53")
