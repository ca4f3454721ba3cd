# Lastmile. `make run` starts the product on embedded defaults; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEPS_HASH := $(shell (cat pyproject.toml; echo $(PYTHON)) | sha1sum | cut -c1-12)
RUN_STAMP := $(VENV)/.run-$(DEPS_HASH)
DEV_STAMP := $(VENV)/.dev-$(DEPS_HASH)
CHROMIUM := /usr/bin/chromium

.PHONY: help run test bench mutation lint graph messages format services browser spamassassin vendor clean

help:
	@echo "make run    - start Lastmile (SQLite, local SMTP catcher, embedded queue)"
	@echo "make test   - run the whole test suite against PostgreSQL and Redis"
	@echo "make bench  - run the benchmarks in bench/"
	@echo "make mutation - operator-swap mutation pass over the guard modules (slow; not in make test)"
	@echo "make lint   - ruff check and the import layers (lint-imports)"
	@echo "make graph  - print the package dependency graph"
	@echo "make messages - extract translatable strings to translations/messages.pot"

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(RUN_STAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e '.[dev]'
	touch $@ $(RUN_STAMP)

run: $(RUN_STAMP)
	$(PY) -m flask --app app dev

services:
	@scripts/ensure-services.sh

browser:
	@test -x $(CHROMIUM) || { echo "installing Debian chromium for the browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || { echo "FATAL: could not install chromium"; exit 1; }; }

# The starter templates' delivered mail is scored by SpamAssassin (tests/test_delivery_spam.py).
spamassassin:
	@command -v spamassassin >/dev/null || { echo "installing Debian spamassassin for the mail-filter test"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq spamassassin >/dev/null) \
	  || { echo "FATAL: could not install spamassassin"; exit 1; }; }

test: $(DEV_STAMP) services browser spamassassin
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest

bench: $(DEV_STAMP) services
	@{ command -v smtp-sink || test -x /usr/sbin/smtp-sink; } >/dev/null || { echo "installing postfix for its smtp-sink (bench SMTP sink)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null \
	   && { postfix stop >/dev/null 2>&1 || true; }) \
	  || echo "smtp-sink unavailable: bench/send.py falls back to its asyncio sink"; }
	$(PY) bench/run_all.py

# Not part of `make test`: every mutant re-runs the module's own tests (tens of minutes).
mutation: $(DEV_STAMP) services
	$(PY) scripts/mutation.py

lint: $(DEV_STAMP)
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports

messages: $(DEV_STAMP)
	$(VENV)/bin/pybabel extract -F babel.cfg -k _ -k lazy_gettext -o translations/messages.pot --ignore-dirs='.venv node_modules bench tests' .

graph: $(DEV_STAMP)
	$(PY) scripts/package_graph.py

format: $(DEV_STAMP)
	$(PY) -m ruff format .

vendor:
	scripts/vendor.sh

clean:
	rm -rf $(VENV) instance test-artifacts
