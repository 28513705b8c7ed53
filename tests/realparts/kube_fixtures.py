"""Pytest plugin: the real control plane and DNS server as fixtures. Registered from ``tests/conftest.py``.

Fixtures:
- ``control_plane`` (session): a started ``ControlPlane`` (etcd + kube-apiserver, every CRD Established).
  When it can't start (binaries missing, start timeout) every test that uses it FAILS with a message that says
  to run ``make envtest``; it never skips.
- ``api_client`` (function, async): a ``kubernetes_asyncio.client.ApiClient`` on a fresh Configuration.
- ``namespace`` (function, async): a fresh namespace named after the test; deleted afterwards. There is no
  namespace controller, so the namespace stays ``Terminating`` with its objects: never list across namespaces
  and expect only your own objects.
- ``dns_server`` (function): a started ``DnsServer`` (dnsmasq) with no records and a 5 s TTL.

On a failed test that used them, the report gets sections with the tails of the etcd, kube-apiserver and
dnsmasq logs. When any test failed, the control plane's work directory (logs included) is kept and its path
printed.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Generator, Iterator

import pytest
from kubernetes_asyncio import client

from tests.realparts.controlplane import ControlPlane, ControlPlaneError
from tests.realparts.dns import DnsServer, DnsServerError

_CONTROL_PLANE = pytest.StashKey[ControlPlane]()
_KEPT_WORKDIR = pytest.StashKey[str]()
_DNS = pytest.StashKey[DnsServer]()
LOG_TAIL_LINES = 80


@pytest.fixture(scope="session")
def control_plane(request: pytest.FixtureRequest) -> Iterator[ControlPlane]:
    """The session's control plane; fails (never skips) when it cannot start."""
    cp = ControlPlane()
    error = None
    try:
        cp.start()
    except ControlPlaneError as e:
        error = str(e)
    if error is not None:  # outside the except block, so the report shows the message alone
        cp.stop(keep_workdir=True)
        pytest.fail(f"the real control plane did not start: {error}\nlogs: {cp.logs_dir}", pytrace=False)
    request.config.stash[_CONTROL_PLANE] = cp
    try:
        yield cp
    finally:
        failed = request.session.testsfailed > 0
        cp.stop(keep_workdir=failed)
        del request.config.stash[_CONTROL_PLANE]
        if failed:
            request.config.stash[_KEPT_WORKDIR] = str(cp.workdir)


@pytest.fixture
async def api_client(control_plane: ControlPlane) -> AsyncIterator[client.ApiClient]:
    """An ApiClient authenticated as the admin; closed after the test."""
    api = client.ApiClient(configuration=control_plane.client_configuration())
    try:
        yield api
    finally:
        await api.close()


def _namespace_name(test_name: str) -> str:
    # RFC 1123 label: lowercase alphanumerics and '-', at most 63 characters; the suffix keeps it unique.
    base = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")[:50].rstrip("-") or "t"
    return f"{base}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def namespace(api_client: client.ApiClient, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh namespace for the test; deleted (it stays Terminating: no namespace controller) afterwards."""
    name = _namespace_name(request.node.name)
    core = client.CoreV1Api(api_client)
    await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        yield name
    finally:
        await core.delete_namespace(name)


@pytest.fixture
def dns_server(request: pytest.FixtureRequest) -> Iterator[DnsServer]:
    """dnsmasq on 127.0.0.1 with no records and a 5 s TTL; fails (never skips) when dnsmasq is missing."""
    server = DnsServer(ttl=5)
    error = None
    try:
        server.start()
    except DnsServerError as e:
        error = str(e)
    if error is not None:
        server.close()
        pytest.fail(f"the real DNS server did not start: {error}", pytrace=False)
    request.node.stash[_DNS] = server
    try:
        yield server
    finally:
        server.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the real parts' log tails to a failed test's report."""
    report = yield
    if not report.failed:
        return report
    fixtures = getattr(item, "fixturenames", ())
    cp = item.config.stash.get(_CONTROL_PLANE, None)
    if cp is not None and {"control_plane", "api_client", "namespace"} & set(fixtures):
        for log_name, tail in cp.log_tails(LOG_TAIL_LINES).items():
            report.sections.append((f"{log_name} (last {LOG_TAIL_LINES} lines)", tail))
    dns = item.stash.get(_DNS, None)
    if dns is not None:
        report.sections.append((f"dnsmasq.log (last {LOG_TAIL_LINES} lines)", dns.log_tail(LOG_TAIL_LINES)))
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """Say where the kept control-plane logs are."""
    if kept := config.stash.get(_KEPT_WORKDIR, None):
        terminalreporter.write_line(f"control-plane work directory and logs kept in {kept}")
