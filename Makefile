# proassist_ros — two commands: `make demo` and `make test`. Both set everything up first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup test demo bench soak lint clean distclean

setup:
	@bash scripts/setup.sh

test: setup
	@$(PY) -m pytest $(PYTEST_ARGS)

demo: setup
	@$(VENV)/bin/proassist demo $(DEMO_ARGS)

# `make bench`: plots in bench_output/, every key in bench/results/summary.json, the table in
# docs/performance.md; `make bench QUICK=1`: the same keys from reduced runs (no docs table).
bench: setup
	@$(VENV)/bin/proassist bench $(if $(filter-out 0,$(QUICK)),--quick) $(BENCH_ARGS)

# `make soak`: 5 minutes of 1920x1080 rgb8 at 30 FPS from a stock camera process over live DDS,
# then an 8K burst (bench/soak.py; docs/reliability.md): RSS, counters, latency, a plot.
soak: setup
	@$(PY) bench/soak.py $(SOAK_ARGS)

lint: setup
	@$(VENV)/bin/ruff check proassist_ros test scripts launch

clean:
	rm -rf build install log .pytest_cache demo_output

distclean: clean
	rm -rf $(VENV) .cache
