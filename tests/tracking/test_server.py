"""The private mlflow server: loopback only, and started again when it dies."""

from __future__ import annotations

import socket
import time
import urllib.request

import pytest

from benchmarks.soak import descendants, processes
from sn_platform.tracking.server import LocalServer

pytestmark = pytest.mark.slow


def outward_address() -> str | None:
    """This machine's address on its default route (not loopback), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent for UDP connect
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_dead_private_server_is_restarted_on_its_port_and_listens_on_loopback_only(tmp_path):
    server = LocalServer(f"sqlite:///{tmp_path}/mlflow.db", str(tmp_path / "a"), watch_s=0.5)
    server.start()
    try:
        assert "--host" in server.command and "127.0.0.1" in server.command
        address = outward_address()
        if address is not None:
            with pytest.raises(OSError):
                socket.create_connection((address, server.port), timeout=2).close()
        first = server.process
        server.kill()
        deadline = time.monotonic() + 120
        while server.restarts == 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert server.restarts == 1 and server.process is not first
        with urllib.request.urlopen(f"{server.url}/health", timeout=5) as answer:
            assert answer.status == 200
    finally:
        server.stop()


def test_the_private_server_starts_no_job_runner(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", raising=False)
    server = LocalServer(f"sqlite:///{tmp_path}/mlflow.db", str(tmp_path / "a")).start()
    try:
        assert server.process is not None
        time.sleep(3)  # MLflow starts its job runner, when it does, just after answering
        commands = [p.command for p in descendants(server.process.pid, processes())]
        assert any("mlflow" in command for command in commands)
        assert not [command for command in commands if "huey" in command]
    finally:
        server.stop()
