"""A private ``mlflow server`` on 127.0.0.1, the single writer of a SQLite store."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def local_server(backend_uri: str, artifact_root: str, timeout_s: float = 120.0) -> Iterator[str]:
    """Run ``mlflow server`` on 127.0.0.1 over ``backend_uri`` while the block runs.

    SQLite takes one writer at a time; concurrent sweep trials log through this one
    server process instead of opening the database themselves. Yields the server URL.
    """
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", backend_uri, "--default-artifact-root",
        Path(artifact_root).resolve().as_uri(), "--workers", "1",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                error = (process.stderr.read() if process.stderr else b"").decode()[-500:]
                raise RuntimeError(f"mlflow server exited ({process.returncode}): {error}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"mlflow server at {url} not up in {timeout_s} s") from None
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@contextlib.contextmanager
def private_endpoint(uri: str, artifact_location: str | None) -> Iterator[str]:
    """The URI trials log to: a private ``mlflow server`` over a SQLite store, else ``uri``."""
    if uri.startswith("sqlite:"):
        root = artifact_location or str(Path(uri.removeprefix("sqlite:///")).parent)
        with local_server(uri, root) as url:
            yield url
    else:
        yield uri
