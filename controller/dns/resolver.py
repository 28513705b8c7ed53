"""A TTL-aware async resolver (dnspython) that keeps the last known answer when a lookup fails.

Contract:
- ``await resolver.resolve(name)`` returns a ``DnsAnswer``: the IPv4 and IPv6 addresses of ``name`` (A and
  AAAA, queried together, sorted), and ``ttl``, the seconds until the answer should be looked up again (the
  smallest record TTL; what is left of it when served from the cache).
- Names are looked up as absolute names (no search list). An IP literal is answered as itself.
- The cache serves an answer until its TTL runs out; concurrent lookups of one name share one query.
- NXDOMAIN and NODATA (the name exists without A/AAAA records) are **answers**, not outages: the name has no
  addresses now (a headless Service scaled to zero), so ``ips`` is empty and the old addresses are dropped,
  since they may belong to other pods by now and would receive the member's traffic and credentials.
  ``error`` says which (``NXDOMAIN``, ``no A or AAAA records``), so the builder reports it; the answer is kept
  for the negative TTL (the SOA's, RFC 2308), else ``retry_after``.
- A failed lookup (timeout, SERVFAIL, REFUSED, no nameserver reachable), for either record type, keeps the
  **last known addresses** and sets ``error``; it is retried after ``retry_after`` seconds (the answer's
  ``ttl``). With no last known addresses, ``ips`` is empty and ``error`` says why: the builder turns that into
  ``DNSResolutionFailed``.
- ``known(name)`` is the cached answer without I/O (``None`` if the name was never looked up).
- ``aigw_dns_lookups_total{result}`` counts queries by outcome (``success``, ``empty``: NXDOMAIN or NODATA,
  ``failure``, ``stale``: a failure that kept last known addresses), for the failure-is-visible rule.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.rdatatype
import dns.resolver
from prometheus_client import CollectorRegistry, Counter

from controller.translate.snapshot import DnsAnswer

log = logging.getLogger(__name__)

DEFAULT_RETRY_AFTER = 5.0
DEFAULT_TIMEOUT = 2.0


def parse_nameserver(value: str) -> tuple[str, int]:
    """``host`` / ``host:port`` / ``[v6]:port`` → ``(ip, port)``; the port defaults to 53."""
    v = value.strip()
    if v.startswith("["):
        host, _, rest = v[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else 53
    elif v.count(":") == 1:
        host, _, p = v.partition(":")
        port = int(p)
    else:
        host, port = v, 53
    ipaddress.ip_address(host)  # a nameserver must be an address; raises ValueError otherwise
    if not 0 < port < 65536:
        raise ValueError(f"invalid port in {value!r}")
    return host, port


@dataclass(slots=True)
class _Entry:
    ips: tuple[str, ...]
    expires: float
    error: str | None


class DnsResolver:
    """See the module docstring."""

    def __init__(
        self,
        *,
        nameserver: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry_after: float = DEFAULT_RETRY_AFTER,
        registry: CollectorRegistry | None = None,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        if nameserver:
            host, port = parse_nameserver(nameserver)
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = [host]
            self._resolver.port = port
        else:
            self._resolver = dns.asyncresolver.Resolver()  # the system's /etc/resolv.conf
        self._resolver.timeout = timeout
        self._resolver.lifetime = timeout
        self._retry_after = retry_after
        self._now = now
        self._cache: dict[str, _Entry] = {}
        self._inflight: dict[str, asyncio.Future[DnsAnswer]] = {}
        self.lookups = Counter(
            "aigw_dns_lookups_total",
            "DNS lookups of pool member hostnames by result",
            ["result"],
            registry=registry,
        )
        for r in ("success", "empty", "failure", "stale"):
            self.lookups.labels(r)

    @property
    def nameservers(self) -> list[str]:
        return [str(n) for n in self._resolver.nameservers]

    def known(self, name: str) -> DnsAnswer | None:
        """The cached answer (possibly expired), without I/O."""
        e = self._cache.get(name)
        if e is None:
            return None
        return DnsAnswer(e.ips, max(0.0, e.expires - self._now()), e.error)

    async def resolve_all(self, names: Iterable[str]) -> dict[str, DnsAnswer]:
        """Resolve every name concurrently."""
        uniq = sorted(set(names))
        answers = await asyncio.gather(*(self.resolve(n) for n in uniq))
        return dict(zip(uniq, answers, strict=True))

    async def resolve(self, name: str) -> DnsAnswer:
        try:
            ip = ipaddress.ip_address(name)
            return DnsAnswer((str(ip),), 300.0, None)
        except ValueError:
            pass
        e = self._cache.get(name)
        now = self._now()
        if e is not None and e.expires > now:
            return DnsAnswer(e.ips, e.expires - now, e.error)
        pending = self._inflight.get(name)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[DnsAnswer] = asyncio.get_running_loop().create_future()
        self._inflight[name] = fut
        try:
            answer = await self._lookup(name)
            fut.set_result(answer)
            return answer
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: waiters re-raise it, nobody else has to
            raise
        finally:
            del self._inflight[name]

    async def _lookup(self, name: str) -> DnsAnswer:
        qname = dns.name.from_text(name)  # absolute: no search list
        results = await asyncio.gather(
            self._query(qname, dns.rdatatype.A), self._query(qname, dns.rdatatype.AAAA)
        )
        now = self._now()
        failures = [r.text for r in results if isinstance(r, _Failure)]
        answers = [r for r in results if isinstance(r, _Answer)]
        ips = [ip for r in answers for ip in r.ips]
        if ips and not failures:
            ttl = min(r.ttl for r in answers if r.ips and r.ttl is not None)
            uniq = tuple(
                sorted(set(ips), key=lambda s: (ipaddress.ip_address(s).version, ipaddress.ip_address(s)))
            )
            self._cache[name] = _Entry(uniq, now + ttl, None)
            self.lookups.labels("success").inc()
            return DnsAnswer(uniq, ttl, None)
        if not failures:  # both types answered, without addresses: the name has none now
            error = "; ".join(dict.fromkeys(r.empty for r in answers if r.empty)) or "no A or AAAA records"
            ttl = min((r.ttl for r in answers if r.ttl is not None), default=self._retry_after)
            last = self._cache.get(name)
            if last is not None and last.ips:
                log.warning(
                    "DNS lookup of %s: %s; its old addresses %s are dropped", name, error, list(last.ips)
                )
            self._cache[name] = _Entry((), now + ttl, error)
            self.lookups.labels("empty").inc()
            return DnsAnswer((), ttl, error)
        error = "; ".join(dict.fromkeys(failures))
        last = self._cache.get(name)
        kept = last.ips if last is not None else ()
        self._cache[name] = _Entry(kept, now + self._retry_after, error)
        self.lookups.labels("stale" if kept else "failure").inc()
        log.warning(
            "DNS lookup of %s failed: %s%s", name, error, " (keeping last known addresses)" if kept else ""
        )
        return DnsAnswer(kept, self._retry_after, error)

    async def _query(self, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> _Answer | _Failure:
        """The answer for one record type (addresses, or none with the reason and negative TTL), or a
        failure: the server could not say."""
        try:
            ans = await self._resolver.resolve(qname, rdtype, search=False, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN as e:
            response = e.response(qname)  # type: ignore[no-untyped-call]  # dnspython leaves it untyped
            return _Answer((), _negative_ttl(response), "NXDOMAIN")
        except dns.resolver.LifetimeTimeout:
            return _Failure("timeout")
        except dns.resolver.NoNameservers as e:
            return _Failure(f"no nameserver answered ({e.msg if hasattr(e, 'msg') else 'SERVFAIL'})")
        except dns.exception.DNSException as e:
            return _Failure(f"{type(e).__name__}: {e}")
        if ans.rrset is None:
            return _Answer((), _negative_ttl(ans.response), "")
        return _Answer(tuple(r.to_text() for r in ans.rrset), float(ans.rrset.ttl), "")


@dataclass(frozen=True, slots=True)
class _Answer:
    """The server answered: ``ips`` (maybe none); ``ttl``: of the records, or the negative TTL (None: not
    given); ``empty``: why there are no records (``NXDOMAIN``; ``""`` for records or NODATA)."""

    ips: tuple[str, ...]
    ttl: float | None
    empty: str


@dataclass(frozen=True, slots=True)
class _Failure:
    text: str


def _negative_ttl(response: dns.message.Message | None) -> float | None:
    """RFC 2308: the authority section's SOA bounds how long a negative answer holds: min(TTL, MINIMUM)."""
    if response is None:
        return None
    for rrset in response.authority:
        if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
            return float(min(rrset.ttl, rrset[0].minimum))
    return None
