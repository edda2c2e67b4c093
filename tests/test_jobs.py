"""The launch recipes keep servers private or password-protected."""

from __future__ import annotations

from pathlib import Path

JOBS = Path(__file__).resolve().parents[1] / "jobs"


def test_no_dashboard_or_server_is_opened_without_protection():
    for path in JOBS.iterdir():
        text = path.read_text()
        assert "--dashboard-host=0.0.0.0" not in text, path.name
        if "MLFLOW_HOST=0.0.0.0" in text and path.name != "mlflow-server.sh":
            assert "MLFLOW_AUTH=1" in text, path.name


def test_mlflow_server_script_binds_loopback_by_default_and_offers_basic_auth():
    script = (JOBS / "mlflow-server.sh").read_text()
    assert 'HOST="${MLFLOW_HOST:-127.0.0.1}"' in script
    assert "--app-name basic-auth" in script and "reverse proxy" in script
