"""A private ``mlflow server`` on 127.0.0.1, the single writer of a SQLite store, restarted
when it dies."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

JOB_EXECUTION = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"
# Runs the server and kills its process group once the process that started it is gone.
REAPER = Path(__file__).with_name("reaper.py")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalServer:
    """``mlflow server`` on 127.0.0.1 (never another interface) over ``backend_uri``; a
    watchdog thread starts it again on the same port when it dies, so the clients that log
    through it (buffered) lose nothing.

    Parameters
    ----------
    backend_uri : the store (``sqlite:///...``)
    artifact_root : folder of the artifacts
    timeout_s : how long a start may take
    watch_s : seconds between checks of the process
    """

    def __init__(
        self, backend_uri: str, artifact_root: str, timeout_s: float = 120.0, watch_s: float = 2.0
    ):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [
            sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1",
            "--port", str(self.port), "--backend-store-uri", backend_uri,
            "--default-artifact-root", Path(artifact_root).resolve().as_uri(), "--workers", "1",
        ]  # fmt: skip
        self.timeout_s, self.watch_s = timeout_s, watch_s
        self.restarts = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._stopped = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="mlflow-watchdog", daemon=True)

    def start(self) -> LocalServer:
        """Start the server, wait until it answers, and start the watchdog."""
        self.launch()
        self._watchdog.start()
        return self

    def launch(self) -> None:
        """Start the server process on this port and wait until it answers."""
        # A file, not a pipe: a long-lived server's log must never fill a pipe and stall it.
        log = tempfile.TemporaryFile()
        # MLflow's job runner (GenAI jobs: seven huey processes, about 2 GB) serves nothing
        # here; the environment can still turn it on.
        environment = {JOB_EXECUTION: "false", **os.environ}
        # Its own process group: the server's workers live and die with it (``kill``), and
        # with the sweep, however it ends (``reaper``).
        self.process = subprocess.Popen(
            [sys.executable, "-I", str(REAPER), *self.command],
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
            env=environment,
        )
        deadline = time.monotonic() + self.timeout_s
        while True:
            if self.process.poll() is not None:
                log.seek(0)
                error = log.read().decode(errors="replace")
                raise RuntimeError(
                    f"mlflow server exited ({self.process.returncode}): {error[-500:]}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"mlflow server at {self.url} not up in {self.timeout_s} s"
                    ) from None
                time.sleep(0.5)

    def _watch(self) -> None:
        while not self._stopped.wait(self.watch_s):
            if self.process is not None and self.process.poll() is not None:
                self.kill()  # the workers of the dead server hold the port
                print(
                    f"sn-sweep: the private mlflow server at {self.url} died "
                    f"(exit {self.process.returncode}); starting it again",
                    file=sys.stderr,
                    flush=True,
                )
                try:
                    self.launch()
                    self.restarts += 1
                except (RuntimeError, TimeoutError, OSError) as error:
                    # The port may still be held a moment: the next check tries again.
                    print(f"sn-sweep: restart failed ({error}); retrying", file=sys.stderr)

    def stop(self) -> None:
        """Stop the watchdog, then the server."""
        self._stopped.set()
        if self._watchdog.is_alive():
            self._watchdog.join()
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        self.kill()

    def kill(self) -> None:
        """Kill the server and its workers at once (SIGKILL to its process group)."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@contextlib.contextmanager
def local_server(backend_uri: str, artifact_root: str, timeout_s: float = 120.0) -> Iterator[str]:
    """Run ``mlflow server`` on 127.0.0.1 over ``backend_uri`` while the block runs, started
    again should it die (``LocalServer``).

    SQLite takes one writer at a time; concurrent sweep trials log through this one
    server process instead of opening the database themselves. Yields the server URL.
    """
    server = LocalServer(backend_uri, artifact_root, timeout_s)
    try:
        yield server.start().url
    finally:
        server.stop()


@contextlib.contextmanager
def private_endpoint(uri: str, artifact_location: str | None) -> Iterator[str]:
    """The URI trials log to: a private ``mlflow server`` over a SQLite store, else ``uri``."""
    if uri.startswith("sqlite:"):
        root = artifact_location or str(Path(uri.removeprefix("sqlite:///")).parent)
        with local_server(uri, root) as url:
            yield url
    else:
        yield uri
