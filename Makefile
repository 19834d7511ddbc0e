# Two commands on a fresh machine: `make demo` and `make test`. Each bootstraps .venv itself.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA_DIR ?= $(abspath ../shared/data)

.PHONY: demo test bench bench-full clean help

help:
	@echo "make demo   - train EP on digits on the emulated crossbar over HTTP (runs/<timestamp>/)"
	@echo "make test   - run the test suite (starts real servers on loopback ports)"
	@echo "make bench  - run the benchmarks (under 30 min), results in benchmarks/results/*.json"
	@echo "make bench-full - the benchmarks plus the long ones (MNIST non-ideality sweeps: hours)"
	@echo "make clean  - remove .venv and run outputs"

# a third-party driver plugin, installed like any vendor's package (tests/test_plugins.py)
PLUGIN := tests/plugins/spinhil_toy_driver
PLUGIN_FILES := $(PLUGIN)/pyproject.toml $(wildcard $(PLUGIN)/src/*/*.py)

$(STAMP): pyproject.toml $(PLUGIN_FILES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	$(BIN)/python -m pip install --quiet ./$(PLUGIN)
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/hil-train demo $(ARGS)

test: $(STAMP)
	SPINHIL_DATA_DIR=$(DATA_DIR) $(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	SPINHIL_DATA_DIR=$(DATA_DIR) $(BIN)/python -m benchmarks.run $(ARGS)

bench-full: $(STAMP)
	SPINHIL_DATA_DIR=$(DATA_DIR) $(BIN)/python -m benchmarks.run --full $(ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
