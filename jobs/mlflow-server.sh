#!/usr/bin/env bash
# An MLflow tracking server with a database backend store and an artifact root, for a team
# or a Ray cluster (`sn-train tracking=server`, `sn-sweep tracking=server tracking.uri=...`).
#
#   jobs/mlflow-server.sh                      # sqlite:///mlruns/mlflow.db on 127.0.0.1:5000
#   MLFLOW_BACKEND=postgresql://user@db/mlflow MLFLOW_ARTIFACTS=/shared/mlruns \
#     MLFLOW_AUTH=1 MLFLOW_HOST=0.0.0.0 jobs/mlflow-server.sh   # many writers, every node
#
# Security: the server answers anyone who reaches it, and a logged model is pickled code
# that sn-infer runs. It binds 127.0.0.1 unless MLFLOW_HOST says otherwise; a server other
# machines reach must ask for a password: MLFLOW_AUTH=1 runs `mlflow server --app-name
# basic-auth` (change the admin password at once, clients set MLFLOW_TRACKING_USERNAME and
# MLFLOW_TRACKING_PASSWORD), or put it behind a reverse proxy with TLS and authentication.
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
AUTH=()
if [[ "${MLFLOW_AUTH:-0}" == 1 ]]; then AUTH=(--app-name basic-auth); fi
if [[ "$HOST" != 127.0.0.1 && "$HOST" != localhost && ${#AUTH[@]} == 0 ]]; then
    echo "mlflow server: WARNING: $HOST without MLFLOW_AUTH=1 lets anyone on the network in" >&2
fi
command -v "$MLFLOW" >/dev/null || MLFLOW=mlflow
mkdir -p mlruns "$ARTIFACTS"
echo "mlflow server: backend $BACKEND, artifacts $ARTIFACTS, http://$HOST:$PORT"
exec "$MLFLOW" server --backend-store-uri "$BACKEND" --default-artifact-root "$ARTIFACTS" \
    --host "$HOST" --port "$PORT" "${AUTH[@]}"
