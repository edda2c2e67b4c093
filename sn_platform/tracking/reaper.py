"""Run a command and take its process group down once the process that started this one
is gone (SIGKILL, the out-of-memory killer, a job's time limit): no server outlives its
sweep, holding a port and a database.

    python -I sn_platform/tracking/reaper.py COMMAND [ARGUMENT ...]

Started as the leader of a new process group, with the command in that group. A SIGTERM is
passed on to the command, whose exit status is this one's (128 + the signal's number when
a signal ended it). Every ``POLL_S`` seconds it asks for its parent's process id: once that
changes (the parent died and the process was handed to init), it kills the group, itself
included. Standard library only, and run as a script (``-I``), so that it starts in a
fraction of a second without importing the platform.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from types import FrameType

POLL_S = 1.0


def exit_status(returncode: int) -> int:
    """A shell's exit status for ``Popen.returncode`` (negative: ended by that signal)."""
    return 128 - returncode if returncode < 0 else returncode


def main(command: list[str]) -> int:
    """Run ``command`` until it exits or this process's parent dies; its exit status."""
    if not command:
        print("reaper.py: no command to run", file=sys.stderr)
        return 2
    parent = os.getppid()
    child = subprocess.Popen(command)

    def pass_on(signum: int, frame: FrameType | None) -> None:
        del frame
        child.send_signal(signum)

    signal.signal(signal.SIGTERM, pass_on)
    while True:
        try:
            return exit_status(child.wait(timeout=POLL_S))
        except subprocess.TimeoutExpired:
            if os.getppid() != parent:
                os.killpg(os.getpgrp(), signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
