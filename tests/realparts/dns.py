"""A real DNS server for tests: dnsmasq on 127.0.0.1 and a free port, answering only from records we control.

Contract:
- ``DnsServer(ttl=5).start()`` runs ``dnsmasq`` (Debian package ``dnsmasq-base``) with ``--no-resolv
  --no-hosts`` on ``127.0.0.1:<port>`` (UDP and TCP). It answers A/AAAA only from the records given to
  ``set_records``, with the TTL ``ttl`` (``--local-ttl``); every other name gets NXDOMAIN (``--local=/#/``, so
  nothing leaks upstream). A name with only A records answers AAAA with NOERROR and no answer (NODATA).
- ``set_records({"name": ["10.0.0.1", "fd00::1"]})`` replaces every record, sends SIGHUP (dnsmasq re-reads
  its addn-hosts file) and returns only once the server answers from the new file: tests never race a reload.
- ``stop()`` ends the process (a DNS outage: queries time out); ``start()`` starts it again on the same port
  with the current records and TTL. ``close()`` also removes the work directory. Also a context manager.
- A missing ``dnsmasq`` binary raises ``DnsServerError`` (the pytest fixture fails, never skips).
"""

from __future__ import annotations

import grp
import ipaddress
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from tests.realparts.processes import parent_death_hook, stop_process, tail

# A name whose A record encodes the record-set generation: reading it back proves dnsmasq re-read the file.
GENERATION_NAME = "generation.aigw-dns-server"


class DnsServerError(RuntimeError):
    """dnsmasq is missing, failed to start, or did not apply a change in time."""


def _free_udp_tcp_port() -> int:
    # dnsmasq serves both UDP and TCP on its port, so both must be free.
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port: int = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise DnsServerError("found no port free for both UDP and TCP on 127.0.0.1")


def _generation_ip(generation: int) -> str:
    return str(ipaddress.IPv4Address((127 << 24) + (generation % (1 << 24))))


class DnsServer:
    """dnsmasq serving a record set we control. See the module docstring for the contract."""

    def __init__(self, *, ttl: int = 5, binary: str | None = None) -> None:
        self.ttl = ttl
        self.binary = binary or os.environ.get("DNSMASQ_BIN") or shutil.which("dnsmasq") or ""
        self.address = "127.0.0.1"
        self.port = 0
        self.workdir = Path(tempfile.mkdtemp(prefix="aigw-dns-"))
        self.hosts_file = self.workdir / "hosts"
        self.log_file = self.workdir / "dnsmasq.log"
        self.records: dict[str, list[str]] = {}
        self._generation = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> DnsServer:
        """Start dnsmasq (same port as before after a ``stop()``); wait until it answers."""
        if self.running:
            raise DnsServerError("dnsmasq is already running")
        if not self.binary or not os.access(self.binary, os.X_OK):
            raise DnsServerError(
                "dnsmasq not found: install the Debian package dnsmasq-base (apt-get install dnsmasq-base) "
                "or set DNSMASQ_BIN"
            )
        if not self.port:
            self.port = _free_udp_tcp_port()
        self._write_hosts()
        args = [
            self.binary,
            "--keep-in-foreground",
            "--conf-file=/dev/null",  # ignore /etc/dnsmasq.conf
            "--no-resolv",  # no upstream servers from /etc/resolv.conf
            "--no-hosts",  # not /etc/hosts: only our file
            "--local=/#/",  # every domain is local: unknown names get NXDOMAIN, never forwarded
            f"--addn-hosts={self.hosts_file}",
            f"--local-ttl={self.ttl}",
            f"--listen-address={self.address}",
            "--bind-interfaces",
            f"--port={self.port}",
            f"--pid-file={self.workdir / 'dnsmasq.pid'}",
            # dnsmasq drops root to `nobody`, which can't read our private temp dir: stay who we are.
            f"--user={pwd.getpwuid(os.getuid()).pw_name}",
            f"--group={grp.getgrgid(os.getgid()).gr_name}",
            f"--log-facility={self.log_file}",
            "--log-queries",
        ]
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=parent_death_hook(signal.SIGKILL),  # a killed pytest leaves no dnsmasq behind
        )
        self._wait_for_generation()
        return self

    def stop(self) -> None:
        """Stop dnsmasq (SIGTERM, SIGKILL after 10 s). Queries to the port then time out."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            stop_process(proc, grace=10)
        finally:
            if proc.stderr is not None:
                proc.stderr.close()

    def close(self) -> None:
        """Stop and remove the work directory."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> DnsServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def set_records(self, records: dict[str, list[str]]) -> None:
        """Replace every record (name -> IPv4/IPv6 addresses); returns once dnsmasq serves the new set."""
        for name, ips in records.items():
            if not name or any(c.isspace() for c in name):
                raise ValueError(f"invalid DNS name {name!r}")
            for ip in ips:
                ipaddress.ip_address(ip)  # raises ValueError on garbage before dnsmasq silently drops it
        self.records = {name: list(ips) for name, ips in records.items()}
        self._write_hosts()
        if self.running:
            assert self._proc is not None
            self._proc.send_signal(signal.SIGHUP)
            self._wait_for_generation()

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_file, lines)

    def _write_hosts(self) -> None:
        self._generation += 1
        lines = [f"{_generation_ip(self._generation)} {GENERATION_NAME}"]
        lines += [f"{ip} {name}" for name, ips in self.records.items() for ip in ips]
        tmp = self.hosts_file.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        tmp.chmod(0o644)
        tmp.replace(self.hosts_file)  # atomic: dnsmasq never reads half a file

    def _wait_for_generation(self, timeout: float = 10) -> None:
        want = _generation_ip(self._generation)
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise DnsServerError(f"dnsmasq exited with code {self._proc.returncode}: {err.strip()}")
            try:
                query = dns.message.make_query(GENERATION_NAME, dns.rdatatype.A)
                answer = dns.query.udp(query, self.address, port=self.port, timeout=0.5)
                got = [rr.to_text() for rrset in answer.answer for rr in rrset]
                if got == [want]:
                    return
                last = f"{dns.rcode.to_text(answer.rcode())} {got}"
            except (dns.exception.DNSException, OSError) as e:
                last = repr(e)
            time.sleep(0.05)
        raise DnsServerError(f"dnsmasq did not serve record generation {want} within {timeout} s ({last})")
