#!/usr/bin/env bash
# The device check (docs/howto-gpu-check.md). On a lent GPU machine, in at most 9 minutes:
# install what its image lacks from carried wheels, then run the gpu-marked tests, the
# pipeline and step benchmark, a 4-trial sweep at 0.25, 0.5 and 1.0 GPU per trial on a small
# phantom, and sn-infer with the local and the Ray engine on the GPU; $OUT/gpu-check.json
# sums it up, $OUT/gpu-check.log holds every step's output.
#
#   bash benchmarks/gpu_check.sh download   here: the wheels, bundled into wheels/1, 2, 3
#   bash benchmarks/gpu_check.sh receive    there, calls 1 and 2 (carry wheels/1, wheels/2)
#   bash benchmarks/gpu_check.sh            there, the last call (carry wheels/3): the check
#   SN_GPU_CHECK_CPU=1 bash benchmarks/gpu_check.sh
#       here: the same steps on CPU with this machine's packages (no install; the
#       gpu-marked tests skip, one sweep without a GPU share), to try the script end to end
#
# PYTHON names the interpreter (there: python3, which has torch; here: .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PART_MIB=56  # one call carries 64 MiB with the working tree (about 1.5 MiB)
PLATFORMS=(manylinux_2_39_x86_64 manylinux_2_35_x86_64 manylinux_2_34_x86_64
  manylinux_2_31_x86_64 manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64
  manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64)

download() {
  local python=${PYTHON:-.venv/bin/python} parts=0
  rm -rf wheels && mkdir -p wheels/all
  "$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp "${PLATFORMS[@]/#/--platform=}" -d wheels/all -r benchmarks/gpu_wheels.txt
  "$python" -m pip wheel --quiet --no-deps -w wheels/all antlr4-python3-runtime==4.9.3
  tar -cf - -C wheels/all . | split -b "${PART_MIB}M" -d -a 1 - wheels/bundle.
  rm -rf wheels/all
  for part in wheels/bundle.*; do
    parts=$((parts + 1)) && mkdir -p "wheels/$parts" && mv "$part" "wheels/$parts/"
  done
  du -sh wheels/*/
  echo "gpu_check: $parts parts; run 'bash benchmarks/gpu_check.sh receive' carrying wheels/K" \
    "for K = 1 .. $((parts - 1)), then 'bash benchmarks/gpu_check.sh' carrying wheels/$parts"
}

if [[ ${1:-} == download ]]; then download; exit 0; fi
if [[ ${1:-} == receive ]]; then ls -l wheels/*/ && echo "gpu_check: parts kept"; exit 0; fi

START=$(date +%s)
OUT=${OUT:-$ROOT/gpu-check-out}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sn-gpu-check.XXXXXX")
mkdir -p "$OUT" "$WORK/logs"
STEPS=$WORK/steps.tsv
: > "$STEPS"
if [[ -n ${SN_GPU_CHECK_CPU:-} ]]; then
  MODE=cpu PYTHON=${PYTHON:-.venv/bin/python} BUDGET=${SN_GPU_CHECK_SECONDS:-3600}
  export PYTHONPATH=$ROOT
else
  MODE=cuda PYTHON=${PYTHON:-python3} BUDGET=${SN_GPU_CHECK_SECONDS:-520}
  mkdir -p "$WORK/wheels"
  cat wheels/*/bundle.* | tar -x -C "$WORK/wheels"
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --target "$WORK/site" "$WORK"/wheels/*.whl
  export PYTHONPATH=$WORK/site:$ROOT
fi
DEADLINE=$((START + BUDGET))
export PYTHONUNBUFFERED=1

# step NAME SECONDS COMMAND...: run COMMAND within SECONDS (and the deadline), its output in
# logs/NAME.log, its exit status and seconds in steps.tsv.
step() {
  local name=$1 budget=$2 start rc=0
  shift 2
  local left=$((DEADLINE - $(date +%s)))
  ((budget > left)) && budget=$left
  if ((budget < 30)); then
    printf '%s\tskipped\t0\n' "$name" >> "$STEPS" && echo "gpu_check: $name skipped: no time left"
    return
  fi
  start=$(date +%s)
  timeout -k 10 "$budget" "$@" > "$WORK/logs/$name.log" 2>&1 || rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$(($(date +%s) - start))" >> "$STEPS"
  echo "gpu_check: $name: exit $rc in $(($(date +%s) - start)) s"
}

# The entry points, as sn-phantom, sn-sweep and sn-infer run them (no console scripts there).
PHANTOM=("$PYTHON" -c "from sn_platform.cli import phantom; phantom()" "hydra.run.dir=$WORK/hydra")
SWEEP=("$PYTHON" -c "from sn_platform.cli import sweep; sweep()" "hydra.run.dir=$WORK/hydra")
INFER=("$PYTHON" -c "from sn_platform.cli import infer; infer()" "hydra.run.dir=$WORK/hydra")

# shellcheck disable=SC2046  # one argument per test file
step tests 120 "$PYTHON" -m pytest -q -p no:cacheprovider -m gpu \
  $(grep -rl --include='*.py' 'pytest.mark.gpu' tests)
if [[ $MODE == cuda ]]; then
  step train_benchmark 150 "$PYTHON" benchmarks/train.py --data "$WORK/bench" --subjects 8 \
    --workers 0 8 --steps 40 --output "$WORK/train.json"
else
  step train_benchmark 600 "$PYTHON" benchmarks/train.py --data "$WORK/bench" --threads 1 \
    --workers 0 1 --rounds 1 --model-rounds 1 --steps 2 --output "$WORK/train.json"
fi
step phantom 60 "${PHANTOM[@]}" "out=$WORK/phantom" subjects=8 seed=5 head=small 'sites=[A]'

# A 4-trial sweep (2 configurations x 2 folds) in seconds a trial: the sweep's mechanics.
TINY=(experiment=smoke tune=demo 'data.patch_size=[32,32,3]' data.samples_per_volume=2
  trainer.max_epochs=2 'data.preprocessing.spacing_mm=[1.0,1.0,2.0]' '~tune.selection'
  '+tune.selection={val/dsc:1.0}' tune.min_structure_dsc=null tune.verbose=0 "data.root=$WORK/phantom")
sweep() {  # sweep NAME: the sn-sweep command of sweep NAME, in COMMAND
  COMMAND=("${SWEEP[@]}" "${TINY[@]}" "tune.name=$1" "tune.storage_path=$WORK/$1/ray_results"
    "tracking.uri=sqlite:///$WORK/$1/mlflow.db" "tracking.artifact_location=$WORK/$1/mlruns")
}
if [[ $MODE == cuda ]]; then
  # The packed case first: the champion sn-infer uses comes from it.
  for share in 0.25 0.5 1.0; do
    sweep "gpu-$share"
    step "sweep-gpu-$share" 130 "${COMMAND[@]}" "tune.resources_per_trial={cpu:4,gpu:$share}" \
      trainer.device=auto
  done
  CHAMPION=gpu-0.25 ACTOR_GPUS=0.5
else
  sweep cpu
  step sweep-cpu 1200 "${COMMAND[@]}" 'tune.resources_per_trial={cpu:1,gpu:0}' ray.num_cpus=2
  CHAMPION=cpu ACTOR_GPUS=0
fi
INFER+=(model_uri=models:/sn-vnet@champion "input=$WORK/phantom"
  "tracking.uri=sqlite:///$WORK/$CHAMPION/mlflow.db" 'subjects=[001,002,003,004]'
  overwrite=true infer.progress=false)
step infer-local 90 "${INFER[@]}" "output=$WORK/infer-local" infer.engine=local
step infer-ray 120 "${INFER[@]}" "output=$WORK/infer-ray" infer.engine=ray \
  infer.ray.num_actors=2 "infer.ray.gpus_per_actor=$ACTOR_GPUS"

for log in "$WORK"/logs/*.log; do
  printf '\n===== %s\n' "$(basename "$log" .log)" && tail -c 2000000 "$log"
done > "$OUT/gpu-check.log"
"$PYTHON" - "$WORK" "$OUT/gpu-check.json" "$MODE" "$(($(date +%s) - START))" << 'EOF'
"""The check's summary: each step's exit status and seconds, the benchmark's JSON, the
line each sweep printed per trial, and the line sn-infer sums its subjects up in."""
import json
import subprocess
import sys
from pathlib import Path

work, output, mode, seconds = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
logs = {path.stem: path.read_text(errors="replace").splitlines() for path in (work / "logs").glob("*.log")}
steps = [line.split("\t") for line in (work / "steps.tsv").read_text().splitlines()]
gpus = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False) if mode == "cuda" else None
train = work / "train.json"
summary = {
    "check": "gpu_check", "mode": mode, "seconds": int(seconds),
    "gpus": gpus.stdout.splitlines() if gpus else [],
    "steps": {name: {"exit": status, "seconds": int(took)} for name, status, took in steps},
    "tests": (logs.get("tests") or ["not run"])[-1],
    "train_benchmark": json.loads(train.read_text()) if train.exists() else None,
    "sweeps": {name: [line for line in lines if line.startswith("sn-sweep: trial")]
               for name, lines in sorted(logs.items()) if name.startswith("sweep")},
    "infer": {name: [line for line in lines if line.startswith("sn-infer:") and "segmented" in line]
              for name, lines in sorted(logs.items()) if name.startswith("infer")},
}
output.write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps({k: summary[k] for k in ("mode", "seconds", "gpus", "steps", "tests", "sweeps", "infer")}, indent=2))
EOF
rm -rf "$WORK"
