"""``make demo`` from a fresh clone, timed: wall and CPU seconds, on this machine or on an
emulated slower one (a CPU quota), with the float32 matmul rate measured under the same
quota; prints JSON.

    sudo .venv/bin/python benchmarks/demo_time.py [--quota-cores 0.67] [--output FILE --key KEY]

The clone gets its own virtual environment (the install is timed too), an empty
registration cache (``SN_PLATFORM_CACHE``) and no pip cache, as on a new machine. A quota
of q cores (cgroup v1 ``cpu.cfs_quota_us``) slows everything alike: on 2 cores whose
matmul runs at 154-210 GFLOP/s, q = 0.67 gives 52-55 GFLOP/s, the slowest machine this
project has seen. Everything slowed alike is the worst case: a real slow machine is often
slower at matrix products than at the rest. Needs root and the cgroup v1 ``cpu`` and
``cpuacct`` controllers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from report import emit, machine

CGROUPS = Path("/sys/fs/cgroup")
PERIOD_US = 100_000
MATMUL = "from report import cpu_gflops; print(cpu_gflops(repeats=30))"


def make_cgroup(name: str, quota_cores: float | None) -> list[Path]:
    """cgroup v1 folders (cpu, cpuacct) for ``name``; the cpu one capped at
    ``quota_cores``."""
    folders = [CGROUPS / controller / name for controller in ("cpu", "cpuacct")]
    for folder in folders:
        folder.mkdir(exist_ok=True)
    if quota_cores is not None:
        (folders[0] / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (folders[0] / "cpu.cfs_quota_us").write_text(str(int(quota_cores * PERIOD_US)))
    return folders


def run_in(folders: list[Path], command: list[str], cwd: Path, env: dict[str, str]) -> int:
    """Run ``command`` with its process (and all it starts) in the cgroups ``folders``."""

    def join() -> None:
        for folder in folders:
            (folder / "tasks").write_text(str(os.getpid()))

    return subprocess.run(command, cwd=cwd, env=env, preexec_fn=join, check=False).returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--quota-cores", type=float, default=None)
    parser.add_argument("--work", type=Path, default=Path("/tmp/sn-demo-time"))
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--key", default="demo")
    arguments = parser.parse_args()
    if os.geteuid() != 0 or not (CGROUPS / "cpuacct").is_dir():
        sys.exit("demo_time.py: needs root and the cgroup v1 cpu and cpuacct controllers")
    shutil.rmtree(arguments.work, ignore_errors=True)
    clone = arguments.work / "clone"
    subprocess.run(["git", "clone", "--quiet", str(arguments.repo), str(clone)], check=True)
    env = {**os.environ, "SN_PLATFORM_CACHE": str(arguments.work / "cache"),
           "PIP_NO_CACHE_DIR": "1"}  # fmt: skip
    folders = make_cgroup(f"sn-demo-{os.getpid()}", arguments.quota_cores)
    usage = folders[1] / "cpuacct.usage"
    start, cpu_start = time.perf_counter(), int(usage.read_text())
    returncode = run_in(folders, ["make", "demo"], clone, env)
    wall, cpu = time.perf_counter() - start, (int(usage.read_text()) - cpu_start) / 1e9
    rate = subprocess.run(
        [str(clone / ".venv/bin/python"), "-c", MATMUL],
        cwd=clone / "benchmarks", env=env, capture_output=True, text=True, check=True,
        preexec_fn=lambda: (folders[0] / "tasks").write_text(str(os.getpid())),
    ).stdout.strip()  # fmt: skip
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=clone, check=True, capture_output=True, text=True
    ).stdout.strip()
    emit(
        {
            "benchmark": "make_demo_time",
            "machine": machine(),
            "commit": commit,
            "quota_cores": arguments.quota_cores,
            "cpu_matmul_gflop_per_s_under_quota": round(float(rate), 1),
            "returncode": returncode,
            "wall_seconds": round(wall, 1),
            "cpu_seconds": round(cpu, 1),
        },
        arguments.output,
        arguments.key,
    )


if __name__ == "__main__":
    main()
