#!/usr/bin/env bash
# A sweep on this machine: a local Ray, the local SQLite MLflow store (funnelled through a
# private mlflow server for the sweep's lifetime). Extra arguments are Hydra overrides.
#
#   jobs/local-sweep.sh tune=demo data.root=data/phantom trainer.max_epochs=20
#   jobs/local-sweep.sh tune.name=my-sweep tune.resume=true     # after Ctrl-C
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-.venv/bin}"
exec "$BIN/sn-sweep" ray.address=null "$@"
