"""Leader election on a coordination.k8s.io/v1 Lease, so that of several replicas exactly one acts.

Same rules as client-go's leaderelection: a replica may take the Lease only when the record it last
observed has not changed for ``lease_duration`` on *its own* clock (no trust in other clocks); the
holder renews every third of the duration and gives up — the process exits — when it could not renew
within two thirds of it, before anybody else may take over. Updates use the Lease's resourceVersion,
so two candidates can never both win.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from typing import Any

import structlog

from asya_controller.kube import KubeClient, KubeError
from asya_controller.metrics import IS_LEADER

log = structlog.get_logger()


class LeadershipLost(RuntimeError):
    """The Lease could not be renewed in time; the replica must stop acting."""


def _micro_time() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Acquires and keeps one Lease."""

    def __init__(self, kube: KubeClient, namespace: str, name: str, identity: str, lease_duration: float):
        self._kube = kube
        self._path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self._name = name
        self.identity = identity
        self._duration = max(3, int(lease_duration))
        self._observed: dict[str, Any] | None = None
        self._observed_at = 0.0
        self.is_leader = False

    async def acquire(self) -> None:
        """Returns once this replica holds the Lease."""
        retry = self._duration / 5
        while not await self._try():
            await asyncio.sleep(retry)
        self.is_leader = True
        IS_LEADER.set(1)
        log.info("leader_elected", identity=self.identity, lease=self._name)

    async def hold(self) -> None:
        """Renews the Lease forever; raises :class:`LeadershipLost` when a renewal window is missed."""
        last_renewed = time.monotonic()
        while True:
            await asyncio.sleep(self._duration / 3)
            if await self._try():
                last_renewed = time.monotonic()
            elif time.monotonic() - last_renewed > self._duration * 2 / 3:
                self.is_leader = False
                IS_LEADER.set(0)
                raise LeadershipLost(f"could not renew Lease {self._name} for {self._duration * 2 / 3:.0f}s")

    async def release(self) -> None:
        """Hands the Lease back on a clean shutdown so another replica takes over at once."""
        if not self.is_leader:
            return
        self.is_leader = False
        IS_LEADER.set(0)
        try:
            lease = await self._kube.request("GET", f"{self._path}/{self._name}")
            if lease["spec"].get("holderIdentity") == self.identity:
                lease["spec"].update(holderIdentity="", leaseDurationSeconds=1, renewTime=_micro_time())
                await self._kube.request("PUT", f"{self._path}/{self._name}", body=lease, timeout=5)
        except (KubeError, OSError, asyncio.TimeoutError) as exc:
            log.warning("lease_release_failed", error=str(exc))

    async def _try(self) -> bool:
        try:
            return await self._try_once()
        except (KubeError, OSError, asyncio.TimeoutError, ValueError) as exc:
            log.warning("lease_attempt_failed", identity=self.identity, error=f"{type(exc).__name__}: {exc}")
            return False

    async def _try_once(self) -> bool:
        now = _micro_time()
        try:
            lease = await self._kube.request("GET", f"{self._path}/{self._name}", timeout=10)
        except KubeError as exc:
            if exc.status != 404:
                raise
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": self._name},
                    "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": self._duration,
                             "acquireTime": now, "renewTime": now, "leaseTransitions": 0}}
            try:
                await self._kube.request("POST", self._path, body=body, timeout=10)
            except KubeError as create_exc:
                if create_exc.status == 409:
                    return False
                raise
            return True
        spec = lease.get("spec") or {}
        record = {k: spec.get(k) for k in ("holderIdentity", "renewTime", "leaseDurationSeconds")}
        if record != self._observed:
            self._observed, self._observed_at = record, time.monotonic()
        holder = spec.get("holderIdentity") or ""
        duration = spec.get("leaseDurationSeconds") or self._duration
        if holder and holder != self.identity and time.monotonic() - self._observed_at < duration:
            return False
        if holder != self.identity:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        spec.update(holderIdentity=self.identity, leaseDurationSeconds=self._duration, renewTime=now)
        lease["spec"] = spec
        try:
            await self._kube.request("PUT", f"{self._path}/{self._name}", body=lease, timeout=10)
        except KubeError as exc:
            if exc.status == 409:
                return False
            raise
        return True
