# Two commands for a fresh machine: `make demo` (the main job) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# CPU build from local disk on this machine and in CI; pyproject keeps a range.
TORCH_PIN ?= torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: install demo test lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH_PIN)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The main job: phantom -> cross-validated sweep -> champion registered -> batch inference
# on subjects (and a site) the sweep never saw. A few minutes on 2 CPU cores.
DEMO_SWEEP := demo-$(shell date +%Y%m%d-%H%M%S)
DEMO_EPOCHS ?= 20

demo: $(STAMP)
	$(BIN)/sn-phantom out=data/phantom subjects=30 seed=0 preview=true
	$(BIN)/python -m sn_platform.phantom.summary data/phantom
	$(BIN)/sn-sweep tune=demo tune.name=$(DEMO_SWEEP) trainer.max_epochs=$(DEMO_EPOCHS) \
		trainer.progress=false tune.verbose=0
	$(BIN)/sn-phantom out=data/phantom-unseen subjects=8 seed=1000 'sites=[A,B,C]'
	$(BIN)/sn-infer input=data/phantom-unseen output=outputs/sn-infer/phantom-unseen \
		overwrite=true infer.progress=false

lint: $(STAMP)
	$(BIN)/ruff check sn_platform tests benchmarks
	$(BIN)/ruff format --check sn_platform tests benchmarks
	$(BIN)/mypy sn_platform
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) outputs multirun ray_results checkpoints
