"""The reaper: a server's process group goes when the sweep that started it is killed."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from benchmarks.soak import descendants, processes
from sn_platform.tracking.reaper import exit_status
from sn_platform.tracking.server import REAPER

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="reads process states from Linux's /proc"
)


def running(pid: int) -> bool:
    """Whether ``pid`` is a process that has not ended (a zombie has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(condition, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_the_group_dies_with_the_process_that_started_it():
    # A stand-in for sn-sweep: starts the reaper over a long sleep, then is SIGKILLed.
    sweep = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import subprocess, sys, time
            reaper = subprocess.Popen([sys.executable, "-I", {str(REAPER)!r}, "sleep", "300"],
                                      start_new_session=True)
            print(reaper.pid, flush=True)
            time.sleep(300)
        """)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert sweep.stdout is not None
    reaper = int(sweep.stdout.readline())
    assert wait_until(lambda: any("sleep" in p.command for p in descendants(reaper, processes())))
    (sleeper,) = (p.pid for p in descendants(reaper, processes()) if "sleep" in p.command)
    assert running(sleeper)
    sweep.kill()
    sweep.wait()
    assert wait_until(lambda: not running(sleeper) and not running(reaper))


def test_a_sigterm_reaches_the_command_and_its_status_comes_back():
    reaper = subprocess.Popen(
        [sys.executable, "-I", str(REAPER), sys.executable, "-c",
         "import signal, sys, time\n"
         "signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))\n"
         "print('ready', flush=True)\n"
         "time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    assert reaper.stdout is not None and reaper.stdout.readline() == "ready\n"
    reaper.terminate()
    assert reaper.wait(timeout=10) == 7


def test_exit_statuses_are_a_shells():
    assert exit_status(0) == 0
    assert exit_status(3) == 3
    assert exit_status(-signal.SIGKILL) == 128 + signal.SIGKILL


def test_without_a_command_it_says_so_in_one_line():
    done = subprocess.run(
        [sys.executable, "-I", str(REAPER)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert done.stderr == "reaper.py: no command to run\n"
