# rsitr: two commands on a fresh machine.
#   make run    install into .venv, `dvc repro` (data), then the Prefect benchmark flow (model work)
#   make test   install into .venv, then the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# DVC runs each stage's `rsitr ...` command in a shell: the venv's tools come first on PATH.
export PATH := $(CURDIR)/$(BIN):$(PATH)

# Offline-friendly settings: no telemetry, no hub downloads, patient Prefect start-up on 2 cores.
export DVC_NO_ANALYTICS := 1
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export HF_HUB_OFFLINE := 1
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 180
export PYTHONUNBUFFERED := 1

.PHONY: install run ablations test test-slow bench clean

install: $(STAMP)

# tools/install.py: uv installs the locked versions (pip's indexes passed on); pip if uv fails.
$(STAMP): pyproject.toml requirements.lock tools/install.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python tools/install.py -e '.[test]'
	touch $(STAMP)

run: install
	$(BIN)/dvc repro
	PREFECT_HOME=$(CURDIR)/.prefect $(BIN)/rsitr benchmark
	$(BIN)/rsitr summary

ablations: install
	$(BIN)/dvc repro
	PREFECT_HOME=$(CURDIR)/.prefect $(BIN)/rsitr benchmark --ablations
	$(BIN)/rsitr summary

test: install
	$(BIN)/python -m pytest

test-slow: install
	$(BIN)/python -m pytest -m slow

bench: install
	$(BIN)/python tools/install.py -e '.[test,bench]'
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache
