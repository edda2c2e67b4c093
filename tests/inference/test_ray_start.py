"""Ray starts quietly: Ray's own notices and Ray Data's progress lines stay out of the
user's terminal, and its warnings still reach it."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

SCRIPT = """
import ray
from sn_platform.inference.ray_engine import start_ray
start_ray(None, 1)
dataset = ray.data.from_items([{"a": 1}, {"a": 2}]).map_batches(lambda b: b, batch_size=1)
print("rows", dataset.count())
ray.shutdown()
"""


def test_a_local_ray_and_a_ray_data_job_print_nothing_but_the_result():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "rows 2"
    for notice in ("Started a local Ray instance", "Token authentication", "INFO"):
        assert notice not in result.stderr, result.stderr[-2000:]
