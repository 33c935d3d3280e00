"""The connection to a Ray cluster (or a local instance), shared by every stage that
can spread work over nodes: feature extraction, sharded backends, the ray executor.

Every node offers one unit of the custom resource ``bench_slot``, so two timed runs
never share a machine (see bench.run.executors.ray_executor and docs/scaling.md).
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

from bench.core.errors import BenchError, MissingDependencyError

#: the custom resource of which every node offers one unit
SLOT = "bench_slot"
#: environment variable with the cluster address (``ray://host:10001``, ``host:6379``, auto)
ADDRESS_ENV = "BENCH_RAY_ADDRESS"

_address: str | None = None
_lock = threading.Lock()


def configure(address: str | None) -> None:
    """Set the cluster address for this process (the CLI's ``--address``); None: the
    ``BENCH_RAY_ADDRESS`` environment variable, else a fresh local instance."""
    global _address
    _address = address


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("ray", "ray", "the ray executor") from None
    return ray


def import_path() -> list[str]:
    """sys.path entries a local Ray worker needs to import bench and test plugins."""
    return [p for p in sys.path if p and os.path.isdir(p)]


def ensure_ray(num_cpus: int | None = None) -> Any:
    """Connect to the configured cluster, or start a local instance with one slot."""
    ray = _ray()
    with _lock:
        if ray.is_initialized():
            return ray
        address = _address or os.environ.get(ADDRESS_ENV) or None
        common = dict(include_dashboard=False, log_to_driver=False,
                      configure_logging=False, ignore_reinit_error=True)
        if address:
            # cluster nodes run their own installation of featbench (see docs/scaling.md)
            _check_reachable(address)
            try:
                ray.init(address=address, **common)
            except Exception as exc:  # noqa: BLE001 - ray raises several kinds here
                raise BenchError(f"cannot connect to the ray cluster at {address!r} "
                                 f"(--address / {ADDRESS_ENV}): {_first_line(exc)}") from None
            if not ray.cluster_resources().get(SLOT):
                raise BenchError(
                    f"ray cluster {address} offers no {SLOT!r} resource; start every node "
                    f"with: ray start --resources '{{\"{SLOT}\": 1}}'"
                )
        else:
            env = {"PYTHONPATH": os.pathsep.join(import_path())}
            ray.init(num_cpus=num_cpus or os.cpu_count() or 1, resources={SLOT: 1},
                     runtime_env={"env_vars": env}, **common)
    return ray


def slots(ray: Any) -> int:
    """How many timed build points the cluster runs at once: its ``bench_slot`` units
    (nodes that died are no longer counted; at least 1, so a run never stalls)."""
    return max(1, int(ray.cluster_resources().get(SLOT, 0)))


def needs_shipping(ray: Any, path: str) -> bool:
    """True when the cluster has other nodes that may not see the driver's files.

    A path under a folder named in BENCH_RAY_SHARED (the shared filesystem) is never
    shipped; BENCH_RAY_SHIP_ARRAYS=1 always ships (tests, clusters without shared disk)."""
    if os.environ.get("BENCH_RAY_SHIP_ARRAYS") == "1":
        return True
    shared = [s for s in os.environ.get("BENCH_RAY_SHARED", "").split(os.pathsep) if s]
    if any(Path(path).resolve().is_relative_to(Path(s).resolve()) for s in shared):
        return False
    alive = [n for n in ray.nodes() if n.get("Alive")]
    return len(alive) > 1


def _check_reachable(address: str) -> None:
    """Fail in seconds on a wrong HOST:PORT; ray.init itself retries for minutes."""
    import socket

    if address == "auto" or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    except (OSError, ValueError) as exc:
        raise BenchError(f"cannot reach the ray cluster at {address!r} (--address / "
                         f"{ADDRESS_ENV}): {exc}") from None


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0].strip()[:200] if lines else type(exc).__name__
