"""The real DNS server (dnsmasq) answers A and AAAA from our records with our TTL, reloads, goes down."""

from __future__ import annotations

import dns.resolver
import pytest

from tests.realparts.dns import DnsServer


def _resolver(server: DnsServer) -> dns.resolver.Resolver:
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = [server.address]
    r.port = server.port
    r.lifetime = 1.0
    r.cache = None
    return r


def _answer(server: DnsServer, name: str, rdtype: str) -> tuple[list[str], int]:
    answer = _resolver(server).resolve(name, rdtype)
    assert answer.rrset is not None
    return sorted(rr.to_text() for rr in answer), answer.rrset.ttl


def test_a_and_aaaa_answers_carry_the_configured_ttl(dns_server: DnsServer) -> None:
    dns_server.set_records({"api.example.com": ["10.1.2.3", "10.1.2.4", "fd00::5"]})
    assert _answer(dns_server, "api.example.com", "A") == (["10.1.2.3", "10.1.2.4"], 5)
    assert _answer(dns_server, "api.example.com", "AAAA") == (["fd00::5"], 5)


def test_unknown_names_get_nxdomain_and_missing_families_no_answer(dns_server: DnsServer) -> None:
    dns_server.set_records({"v4only.example.com": ["192.0.2.7"]})
    with pytest.raises(dns.resolver.NXDOMAIN):
        _resolver(dns_server).resolve("nope.example.com", "A")
    with pytest.raises(dns.resolver.NoAnswer):
        _resolver(dns_server).resolve("v4only.example.com", "AAAA")


def test_set_records_replaces_the_answers_at_once(dns_server: DnsServer) -> None:
    dns_server.set_records({"a.example.com": ["10.0.0.1"], "b.example.com": ["10.0.0.2"]})
    assert _answer(dns_server, "a.example.com", "A")[0] == ["10.0.0.1"]
    dns_server.set_records({"a.example.com": ["10.0.0.9"]})
    assert _answer(dns_server, "a.example.com", "A")[0] == ["10.0.0.9"]
    with pytest.raises(dns.resolver.NXDOMAIN):
        _resolver(dns_server).resolve("b.example.com", "A")


def test_stop_is_an_outage_and_start_serves_again_on_the_same_port(dns_server: DnsServer) -> None:
    dns_server.set_records({"svc.example.com": ["10.0.0.3"]})
    port = dns_server.port
    dns_server.stop()
    with pytest.raises(dns.resolver.LifetimeTimeout):
        _resolver(dns_server).resolve("svc.example.com", "A")
    dns_server.start()
    assert dns_server.port == port
    assert _answer(dns_server, "svc.example.com", "A") == (["10.0.0.3"], 5)


def test_ttl_is_configurable() -> None:
    with DnsServer(ttl=42) as server:
        server.set_records({"ttl.example.com": ["10.0.0.4"]})
        assert _answer(server, "ttl.example.com", "A") == (["10.0.0.4"], 42)


def test_invalid_addresses_are_refused_before_reaching_dnsmasq(dns_server: DnsServer) -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        dns_server.set_records({"bad.example.com": ["10.0.0.300"]})
