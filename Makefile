# consentwatch: `make run` starts the proxy + API; `make test` installs everything and runs every test.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Find a Python >= 3.12 by itself: $PYTHON if given, then python3.13/python3.12/python3 on PATH,
# then pyenv's installed versions (machines whose default python3 is older).
PYTHON ?= $(shell for c in python3.13 python3.12 python3 \
	$$(ls -d $$(pyenv root 2>/dev/null || echo $$HOME/.pyenv)/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -rV); do \
	  if command -v $$c >/dev/null 2>&1 && $$c -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then \
	    command -v $$c; break; fi; done)

.PHONY: install lock run demo test bench browser clean fixtures

install: $(STAMP)

# Installs exactly what requirements.lock pins (hashes checked), then the package itself without resolving
# anything, then a smoke run (`--version` and an import of every module). Only a venv that passed the smoke
# run is stamped: a broken install is never marked installed.
$(STAMP): requirements.lock pyproject.toml
	@if [ -z "$(PYTHON)" ]; then echo "consentwatch needs Python >= 3.12 (set PYTHON=/path/to/python3.12)"; exit 2; fi
	@echo "using $(PYTHON)"
	rm -f $(STAMP)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes --no-deps -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	$(VENV)/bin/consentwatch --version
	$(PY) -m consentwatch.smoke
	touch $(STAMP)

# Re-resolves requirements.lock from pyproject.toml (every Python and platform at once), with hashes.
# Upgrading: edit the ranges in pyproject.toml if needed, `make lock`, `make test`, commit both files.
lock:
	@test -x $(VENV)/bin/uv || { test -x $(PY) || $(PYTHON) -m venv $(VENV); $(PY) -m pip install -q uv; }
	$(VENV)/bin/uv pip compile pyproject.toml --extra test --universal --python-version 3.12 \
	  --generate-hashes --upgrade -q -o requirements.lock

# The real browsers for the extension tests: Debian's chromium and firefox-esr (Playwright's own downloads fail
# offline; Firefox is driven over Marionette, loaded with web-ext from extension/node_modules).
browser:
	@(command -v chromium && command -v firefox-esr && command -v certutil) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get install -y -q chromium firefox-esr libnss3-tools wrk >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null && apt-get install -y -q chromium firefox-esr libnss3-tools wrk >/dev/null)); \
	  else echo "install chromium, firefox-esr (and libnss3-tools, wrk) with your package manager"; fi; }
	@command -v npx >/dev/null 2>&1 && [ -x extension/node_modules/.bin/web-ext ] || \
	  (cd extension && npm install --no-audit --no-fund --silent >/dev/null 2>&1) || true

run: install
	$(VENV)/bin/consentwatch run $(ARGS)

# Recorded platform pages through the proxy, offline, on ports of its own (`make demo ARGS=linkedin`).
demo: install
	$(VENV)/bin/consentwatch demo $(ARGS)

test: install browser
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: install browser
	$(PY) bench/run_all.py $(ARGS)

fixtures: install
	$(PY) tests/fixtures/make_fixtures.py
	$(PY) tests/fixtures/make_demo.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
