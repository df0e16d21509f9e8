# proassist_ros — two commands: `make demo` and `make test`. Both set everything up first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup test demo bench lint clean distclean

setup:
	@bash scripts/setup.sh

test: setup
	@$(PY) -m pytest $(PYTEST_ARGS)

demo: setup
	@$(VENV)/bin/proassist demo $(DEMO_ARGS)

bench: setup
	@$(VENV)/bin/proassist bench $(BENCH_ARGS)

lint: setup
	@$(VENV)/bin/ruff check proassist_ros test scripts launch

clean:
	rm -rf build install log .pytest_cache demo_output

distclean: clean
	rm -rf $(VENV) .cache
