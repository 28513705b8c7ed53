"""Leader election on a ``coordination.k8s.io/v1`` Lease (client-go ``tools/leaderelection``).

One process leads; the others wait. Numbers are client-go's: ``lease_duration`` 15 s, ``renew_deadline``
10 s, ``retry_period`` 2 s.

- **Acquire**: every ``retry_period`` (jittered by up to 1.2x, but never later than the moment the observed
  lease expires), read the Lease. It can be taken if it has no holder, or if its record has not changed for
  ``lease_duration`` *as observed on our own clock* (clocks of different machines are never compared). Take
  it with a PUT carrying the ``resourceVersion`` read, so of two candidates only one wins (the other: 409).
- **Renew**: the leader rewrites ``renewTime`` every ``retry_period``. If no renewal succeeds within
  ``renew_deadline``, leadership is lost: ``hold`` raises ``LeaderElectionLost`` and the process must exit
  without graceful shutdown (another leader may already be running).
- **Release**: on clean shutdown (``hold`` cancelled) the leader writes an empty holder with
  ``leaseDurationSeconds=1`` so a successor takes over at once.

Times in the Lease are MicroTime in UTC (``2024-05-01T12:00:00.123456Z``).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import random
import socket
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp

from controller.runtime.client import ApiError, KubeClient, is_conflict, is_not_found
from controller.runtime.clock import Clock, RealClock
from controller.runtime.metrics import Metrics
from controller.runtime.resources import LEASES

log = logging.getLogger(__name__)

JITTER_FACTOR = 1.2
MICROTIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class LeaderElectionLost(Exception):
    """Renewal failed for ``renew_deadline``: stop everything and exit."""


def default_identity() -> str:
    """``hostname_uuid``, unique per process."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


@dataclass(frozen=True, slots=True)
class LeaderElectionConfig:
    """Where the Lease lives and the timing. ``renew_deadline`` must exceed 1.2 x ``retry_period``."""

    name: str
    namespace: str
    identity: str = field(default_factory=default_identity)
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    release_on_cancel: bool = True

    def __post_init__(self) -> None:
        if self.lease_duration <= self.renew_deadline:
            raise ValueError("lease_duration must be greater than renew_deadline")
        if self.renew_deadline <= JITTER_FACTOR * self.retry_period:
            raise ValueError("renew_deadline must be greater than 1.2 x retry_period")


def _microtime() -> str:
    return datetime.now(UTC).strftime(MICROTIME_FORMAT)


class LeaderElector:
    """Acquires, renews and releases one Lease for one identity."""

    def __init__(
        self,
        *,
        client: KubeClient,
        config: LeaderElectionConfig,
        metrics: Metrics | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._client = client
        self.config = config
        self._clock = clock or RealClock()
        self._metrics = metrics or Metrics()
        self._status = self._metrics.leader_status.labels(config.name)
        self._status.set(0)
        self._lease: dict[str, Any] | None = None  # the last Lease we read or wrote
        self._observed_spec: dict[str, Any] | None = None
        self._observed_at = 0.0
        self._leading = False

    @property
    def is_leader(self) -> bool:
        """Whether we hold the Lease (as of our last successful write)."""
        return self._leading

    @property
    def leader(self) -> str:
        """The holder identity last observed ("" if none)."""
        return str((self._observed_spec or {}).get("holderIdentity") or "")

    async def acquire(self) -> None:
        """Return once we hold the Lease. Cancellable."""
        cfg = self.config
        log.info("attempting to acquire leader lease %s/%s as %s", cfg.namespace, cfg.name, cfg.identity)
        while not await self._try_safely():
            await self._clock.sleep(self._next_attempt_in())
        log.info("acquired leader lease %s/%s", cfg.namespace, cfg.name)

    def _next_attempt_in(self) -> float:
        """client-go's jittered retry period, cut short to try right when the observed lease expires.

        With the jitter alone (2 to 4.4 s) a takeover after a crash could take up to ~24 s; trying at the
        expiry moment bounds it by lease_duration plus one retry period.
        """
        delay = self.config.retry_period * (1 + random.random() * JITTER_FACTOR)
        spec = self._observed_spec or {}
        if spec.get("holderIdentity"):
            duration = float(spec.get("leaseDurationSeconds") or self.config.lease_duration)
            expires_in = self._observed_at + duration - self._clock.now()
            delay = min(delay, max(expires_in, 0.0) + 0.01)
        return delay

    async def hold(self) -> None:
        """Renew every ``retry_period`` until cancelled (then release) or lost (``LeaderElectionLost``)."""
        cfg = self.config
        try:
            while True:
                await self._clock.sleep(cfg.retry_period)
                deadline = self._clock.now() + cfg.renew_deadline
                while not await self._try_safely(within=deadline - self._clock.now()):
                    remaining = deadline - self._clock.now()
                    if remaining <= 0:
                        self._set_leading(False)
                        log.error("leader election lost: lease %s/%s not renewed", cfg.namespace, cfg.name)
                        raise LeaderElectionLost(f"lease {cfg.namespace}/{cfg.name} not renewed in time")
                    await self._clock.sleep(min(cfg.retry_period, remaining))
        except asyncio.CancelledError:
            if cfg.release_on_cancel and self._leading:
                await asyncio.shield(self._release())
            raise

    async def _try_safely(self, *, within: float | None = None) -> bool:
        try:
            async with asyncio.timeout(None if within is None else max(within, 0.05)):
                return await self._try_acquire_or_renew()
        except (ApiError, aiohttp.ClientError, OSError, TimeoutError) as e:
            log.info("lease %s/%s: attempt failed: %s", self.config.namespace, self.config.name, e or type(e))
            return False

    async def _try_acquire_or_renew(self) -> bool:
        cfg = self.config
        now = _microtime()
        # Fast path: the leader renews from the Lease it last wrote, without a GET.
        if self._leading and self._lease is not None:
            lease = copy.deepcopy(self._lease)
            lease["spec"]["renewTime"] = now
            try:
                self._record(await self._client.replace(LEASES, lease))
                return True
            except ApiError as e:
                if not is_conflict(e):
                    raise
                self._metrics.leader_slowpath.labels(cfg.name).inc()
        try:
            lease = await self._client.get(LEASES, name=cfg.name, namespace=cfg.namespace)
        except ApiError as e:
            if not is_not_found(e):
                raise
            return await self._create(now)
        spec = lease.get("spec") or {}
        if spec != self._observed_spec:
            self._observed_spec = copy.deepcopy(spec)
            self._observed_at = self._clock.now()
        holder = spec.get("holderIdentity") or ""
        duration = float(spec.get("leaseDurationSeconds") or cfg.lease_duration)
        if holder and holder != cfg.identity and self._observed_at + duration > self._clock.now():
            self._set_leading(False)
            return False
        new_spec = {
            "holderIdentity": cfg.identity,
            "leaseDurationSeconds": int(cfg.lease_duration),
            "acquireTime": spec.get("acquireTime") if holder == cfg.identity else now,
            "renewTime": now,
            "leaseTransitions": int(spec.get("leaseTransitions") or 0) + (0 if holder == cfg.identity else 1),
        }
        lease["spec"] = {k: v for k, v in new_spec.items() if v is not None}
        try:
            self._record(await self._client.replace(LEASES, lease))
        except ApiError as e:
            if is_conflict(e):
                return False  # another candidate wrote first
            raise
        return True

    async def _create(self, now: str) -> bool:
        cfg = self.config
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": cfg.name, "namespace": cfg.namespace},
            "spec": {
                "holderIdentity": cfg.identity,
                "leaseDurationSeconds": int(cfg.lease_duration),
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }
        try:
            self._record(await self._client.create(LEASES, lease, namespace=cfg.namespace))
        except ApiError as e:
            if is_conflict(e):
                return False  # someone created it first
            raise
        return True

    def _record(self, lease: dict[str, Any]) -> None:
        self._lease = lease
        self._observed_spec = copy.deepcopy(lease.get("spec") or {})
        self._observed_at = self._clock.now()
        self._set_leading(True)

    def _set_leading(self, leading: bool) -> None:
        if not leading:
            self._lease = None
        self._leading = leading
        self._status.set(1 if leading else 0)

    async def _release(self) -> None:
        """Hand the Lease back (empty holder, 1 s duration) so a successor need not wait out the lease."""
        cfg = self.config
        if self._lease is None:
            return
        lease = copy.deepcopy(self._lease)
        now = _microtime()
        lease["spec"] = {
            "leaseDurationSeconds": 1,
            "acquireTime": now,
            "renewTime": now,
            "leaseTransitions": int(lease["spec"].get("leaseTransitions") or 0),
        }
        try:
            async with asyncio.timeout(cfg.renew_deadline):
                await self._client.replace(LEASES, lease)
            log.info("released leader lease %s/%s", cfg.namespace, cfg.name)
        except Exception as e:
            log.warning("could not release leader lease %s/%s: %s", cfg.namespace, cfg.name, e)
        finally:
            self._set_leading(False)
