#!/usr/bin/env bash
# An MLflow tracking server with a database backend store and an artifact root, for a team
# or a Ray cluster (`sn-train tracking=server`, `sn-sweep tracking=server tracking.uri=...`).
#
#   jobs/mlflow-server.sh                      # sqlite:///mlruns/mlflow.db on 127.0.0.1:5000
#   MLFLOW_BACKEND=postgresql://user@db/mlflow MLFLOW_ARTIFACTS=/shared/mlruns \
#     MLFLOW_HOST=0.0.0.0 jobs/mlflow-server.sh   # many writers, reachable from every node
#
# SQLite takes one writer at a time: fine for one user (sn-sweep already funnels its trials
# through a private server); use PostgreSQL or MySQL when several sweeps write at once.
set -euo pipefail
cd "$(dirname "$0")/.."
BACKEND="${MLFLOW_BACKEND:-sqlite:///mlruns/mlflow.db}"
ARTIFACTS="${MLFLOW_ARTIFACTS:-$PWD/mlruns}"
HOST="${MLFLOW_HOST:-127.0.0.1}"
PORT="${MLFLOW_PORT:-5000}"
MLFLOW="${MLFLOW:-.venv/bin/mlflow}"
command -v "$MLFLOW" >/dev/null || MLFLOW=mlflow
mkdir -p mlruns "$ARTIFACTS"
echo "mlflow server: backend $BACKEND, artifacts $ARTIFACTS, http://$HOST:$PORT"
exec "$MLFLOW" server --backend-store-uri "$BACKEND" --default-artifact-root "$ARTIFACTS" \
    --host "$HOST" --port "$PORT"
