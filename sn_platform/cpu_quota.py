"""CPU quotas: the cores a process may use where a cgroup caps it (a container's ``--cpus``,
a Kubernetes CPU limit, a scheduler's job), and thread counts that respect them.

Under a quota below the machine's cores, threads beyond the quota only wait: OpenMP's
workers spin at every barrier while their partners are throttled, and the spinning spends
the quota itself (``sn-infer`` on 8 subjects under a 0.67-core quota on 2 cores: 117
CPU-seconds with 2 spinning threads, 102 with passive waiting, 94 with one thread). As the
JVM and Go runtimes do in containers, the entry points read the quota and, where it is
below the cores, start ``ceil(quota)`` threads per library, waiting passively.
Pure standard library: it must run before torch, NumPy or SimpleITK start their threads.
"""

from __future__ import annotations

import math
import os
from collections.abc import MutableMapping
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
# The thread counts each library reads when it starts, and OpenMP's waiting policy.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS",
)


def quota_cores(proc_cgroup: Path = PROC_CGROUP, root: Path = CGROUP_ROOT) -> float | None:
    """The CPU quota (cores, e.g. 0.67) of this process's cgroup and its ancestors, the
    smallest where several set one; None where none does or the files cannot be read.

    cgroup v1: ``cpu.cfs_quota_us / cpu.cfs_period_us`` under the ``cpu`` controller's
    mount (``root/cpu`` or ``root/cpu,cpuacct``); v2: ``cpu.max`` (``QUOTA PERIOD`` or
    ``max``) under ``root``.
    """
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for line in lines:
        hierarchy, controllers, path = line.split(":", 2)
        if "cpu" in controllers.split(","):
            mounts = [m for m in (root / controllers, root / "cpu") if m.is_dir()]
            quotas += _v1_quotas(mounts[0], path) if mounts else []
        elif hierarchy == "0" and not controllers:
            quotas += _v2_quotas(root, path)
    return min(quotas, default=None)


def _ancestors(mount: Path, path: str) -> list[Path]:
    """The cgroup folder of ``path`` under ``mount`` and every folder above it to ``mount``."""
    parts = [p for p in path.split("/") if p]
    return [mount.joinpath(*parts[:n]) for n in range(len(parts), -1, -1)]


def _v1_quotas(mount: Path, path: str) -> list[float]:
    return [
        q for f in _ancestors(mount, path)
        if (q := _ratio(f / "cpu.cfs_quota_us", f / "cpu.cfs_period_us")) is not None
    ]  # fmt: skip


def _v2_quotas(root: Path, path: str) -> list[float]:
    return [q for f in _ancestors(root, path) if (q := _ratio(f / "cpu.max")) is not None]


def _ratio(quota_file: Path, period_file: Path | None = None) -> float | None:
    """Quota / period in cores: from two files (v1, ``-1`` for none), or from one holding
    both (v2 ``cpu.max``, ``max`` for none); None where unset or unreadable."""
    try:
        fields = quota_file.read_text().split()
        if period_file is not None:
            fields += period_file.read_text().split()
        quota, period = (float(f) for f in fields)
    except (OSError, ValueError):  # unreadable, "max", or not two numbers
        return None
    return quota / period if quota > 0 and period > 0 else None


def quota_threads(requested: int, cores: float | None = None) -> int:
    """``requested`` threads, at most ``ceil(cores)`` (the quota, read when None); at least 1."""
    cores = quota_cores() if cores is None else cores
    if cores is None:
        return max(1, requested)
    return max(1, min(requested, math.ceil(cores)))


def limit_threads_to_quota(
    environ: MutableMapping[str, str] | None = None, cores: float | None = None
) -> int | None:
    """Where the quota (``cores``, read when None) is below this machine's cores: each
    library's thread count (``THREAD_VARIABLES``) set to ``ceil(quota)`` and OpenMP's
    waiting passive, each unless ``environ`` (the process's, by default) sets it already;
    processes started later inherit them. The thread count, or None where nothing was set.
    """
    environ = os.environ if environ is None else environ
    cores = quota_cores() if cores is None else cores
    if cores is None or cores >= (os.cpu_count() or 1):
        return None
    threads = max(1, math.ceil(cores))
    for name in THREAD_VARIABLES:
        environ.setdefault(name, str(threads))
    environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return threads
