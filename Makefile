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

.PHONY: install run test bench browser clean fixtures

install: $(STAMP)

$(STAMP): pyproject.toml
	@if [ -z "$(PYTHON)" ]; then echo "consentwatch needs Python >= 3.12 (set PYTHON=/path/to/python3.12)"; exit 2; fi
	@echo "using $(PYTHON)"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# The real browser for the extension tests: Debian's chromium (Playwright's own download fails offline).
browser:
	@(command -v chromium && command -v certutil) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get install -y -q chromium libnss3-tools wrk >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null && apt-get install -y -q chromium libnss3-tools wrk >/dev/null)); \
	  else echo "install chromium (and libnss3-tools, wrk) with your package manager"; fi; }
	@command -v npx >/dev/null 2>&1 && [ -x extension/node_modules/.bin/web-ext ] || \
	  (cd extension && npm install --no-audit --no-fund --silent >/dev/null 2>&1) || true

run: install
	$(VENV)/bin/consentwatch run $(ARGS)

test: install browser
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: install browser
	$(PY) bench/run_all.py

fixtures: install
	$(PY) tests/fixtures/make_fixtures.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
