"""CPU quotas read from cgroup v1 and v2 trees built here, and the thread counts they set."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sn_platform.cpu_quota import (
    THREAD_VARIABLES,
    limit_threads_to_quota,
    quota_cores,
    quota_threads,
)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _v1(tmp_path: Path, quotas: dict[str, int], controllers: str = "cpu") -> Path:
    """A v1 tree: ``quotas`` maps a cgroup path to its cfs_quota_us (period 100 ms); the
    process sits in the deepest one."""
    for cgroup, quota in quotas.items():
        folder = tmp_path / "fs" / controllers / cgroup.strip("/")
        _write(folder / "cpu.cfs_quota_us", f"{quota}\n")
        _write(folder / "cpu.cfs_period_us", "100000\n")
    deepest = max(quotas, key=len)
    proc = tmp_path / "cgroup"
    proc.write_text(f"5:memory:/other\n2:{controllers}:{deepest}\n0::/\n")
    return proc


def test_a_v1_quota_is_read_in_cores(tmp_path):
    proc = _v1(tmp_path, {"/": -1, "/demo": 67000})
    assert quota_cores(proc, tmp_path / "fs") == pytest.approx(0.67)


def test_the_smallest_quota_of_the_cgroup_and_its_ancestors_counts(tmp_path):
    proc = _v1(tmp_path, {"/": -1, "/job": 150000, "/job/step": 300000}, "cpu,cpuacct")
    assert quota_cores(proc, tmp_path / "fs") == pytest.approx(1.5)


def test_no_quota_anywhere_is_none(tmp_path):
    proc = _v1(tmp_path, {"/": -1, "/demo": -1})
    assert quota_cores(proc, tmp_path / "fs") is None
    assert quota_cores(tmp_path / "missing", tmp_path / "fs") is None


def test_a_v2_quota_is_read_from_cpu_max(tmp_path):
    _write(tmp_path / "fs" / "kubepods" / "pod" / "cpu.max", "250000 100000\n")
    _write(tmp_path / "fs" / "kubepods" / "cpu.max", "max 100000\n")
    proc = tmp_path / "cgroup"
    proc.write_text("0::/kubepods/pod\n")
    assert quota_cores(proc, tmp_path / "fs") == pytest.approx(2.5)


def test_threads_are_capped_by_the_quota_rounded_up():
    assert quota_threads(8, cores=2.5) == 3
    assert quota_threads(2, cores=0.67) == 1
    assert quota_threads(1, cores=16.0) == 1


def test_a_quota_below_the_cores_sets_thread_counts_and_passive_waiting_unless_set():
    environ = {"MKL_NUM_THREADS": "4"}
    assert limit_threads_to_quota(environ, cores=0.67) == 1
    assert {name: environ[name] for name in THREAD_VARIABLES} == {
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "4",  # the user's own choice stays
        "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "1",
    }
    assert environ["OMP_WAIT_POLICY"] == "PASSIVE"


def test_a_quota_of_every_core_or_none_sets_nothing():
    environ: dict[str, str] = {}
    assert limit_threads_to_quota(environ, cores=float(os.cpu_count() or 1)) is None
    assert environ == {}
