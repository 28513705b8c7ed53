"""Leader election between manager processes on a real Lease: one leads; a successor takes over within
20 s of the leader being killed (SIGKILL: no release), and at once after a clean SIGTERM (release)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from controller.runtime import LEASES, KubeClient
from tests.realparts.controlplane import ControlPlane

pytestmark = pytest.mark.timeout(150)

REPO = Path(__file__).resolve().parents[3]


class Candidate:
    """One manager process and the lines it printed."""

    def __init__(self, identity: str, proc: asyncio.subprocess.Process, stderr: Path) -> None:
        self.identity = identity
        self.proc = proc
        self.stderr = stderr
        self.lines: list[str] = []
        self.leading_at: float | None = None
        self._leading = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode().strip()
            self.lines.append(line)
            if line == f"LEADING {self.identity}":
                self.leading_at = time.monotonic()
                self._leading.set()

    async def wait_leading(self, within: float) -> bool:
        try:
            await asyncio.wait_for(self._leading.wait(), within)
        except TimeoutError:
            return False
        return True

    def __repr__(self) -> str:
        log = self.stderr.read_text(errors="replace").splitlines()[-15:] if self.stderr.exists() else []
        return f"<{self.identity} stdout={self.lines} stderr tail:\n" + "\n".join(log) + ">"

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()
        await asyncio.gather(self._reader, return_exceptions=True)


Spawn = Callable[[str, str], Awaitable[Candidate]]


@pytest.fixture
async def spawn(control_plane: ControlPlane, namespace: str, tmp_path: Path) -> AsyncIterator[Spawn]:
    started: list[Candidate] = []

    async def start(identity: str, lease: str) -> Candidate:
        stderr = tmp_path / f"{identity}.stderr"
        with stderr.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.integration.runtime.leader_process",
                str(control_plane.kubeconfig), namespace, lease, identity,
                cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=err,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )  # fmt: skip
        cand = Candidate(identity, proc, stderr)
        started.append(cand)
        return cand

    yield start
    for cand in started:
        await cand.stop()


async def first_leader(cands: list[Candidate], within: float) -> Candidate:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        leaders = [c for c in cands if c.leading_at is not None]
        if leaders:
            return leaders[0]
        await asyncio.sleep(0.05)
    pytest.fail(f"nobody leads after {within}s: {cands}")


async def test_only_one_leads_and_successor_takes_over_after_kill(
    spawn: Spawn, api_client: object, namespace: str
) -> None:
    a = await spawn("cand-a", "le-kill")
    b = await spawn("cand-b", "le-kill")
    leader = await first_leader([a, b], within=90)
    follower = b if leader is a else a
    await asyncio.sleep(5)  # several renew periods: the follower must still be waiting
    assert follower.leading_at is None, "two leaders at once"
    lease = await KubeClient(api_client).get(LEASES, name="le-kill", namespace=namespace)
    assert lease["spec"]["holderIdentity"] == leader.identity

    leader.proc.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    await leader.proc.wait()
    assert await follower.wait_leading(within=25), f"no takeover: {follower!r}"
    assert follower.leading_at is not None
    took = follower.leading_at - killed_at
    assert took < 20.0, f"takeover took {took:.1f}s"
    print(f"takeover {took:.1f}s after SIGKILL of the leader")


async def test_clean_shutdown_releases_the_lease(spawn: Spawn, api_client: object, namespace: str) -> None:
    a = await spawn("rel-a", "le-release")
    assert await a.wait_leading(within=90), repr(a)
    b = await spawn("rel-b", "le-release")
    await asyncio.sleep(3)
    assert b.leading_at is None
    a.proc.send_signal(signal.SIGTERM)
    stopped_at = time.monotonic()
    assert await asyncio.wait_for(a.proc.wait(), 30) == 0
    assert await b.wait_leading(within=15), repr(b)
    assert b.leading_at is not None
    # Released (leaseDurationSeconds=1): the successor waits ~1 s plus a retry period, not 15 s.
    assert b.leading_at - stopped_at < 8.0
    lease = await KubeClient(api_client).get(LEASES, name="le-release", namespace=namespace)
    assert lease["spec"]["holderIdentity"] == "rel-b"
    assert lease["spec"]["leaseTransitions"] >= 1
