# The two set-up commands of the README are `make dev` and `make test`; both install what
# they need (pinned) into .venv and node_modules first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP_PY := $(VENV)/.installed
STAMP_NODE := node_modules/.installed

.PHONY: install dev up down status test test-unit lint bench lock deploy clean

install: $(STAMP_PY) $(STAMP_NODE)

$(STAMP_PY): requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

$(STAMP_NODE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

dev: install
	$(PY) -m localcloud dev

up: install
	$(PY) -m localcloud up

down:
	$(PY) -m localcloud down

status: install
	$(VENV)/bin/pacs status

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: install
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check functions localcloud cli tests

bench: install
	test -x /usr/sbin/Orthanc || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq orthanc)
	$(PY) -m bench

lock:
	$(PY) -m pip install -q -r requirements.in
	(echo "# Generated from requirements.in by 'make lock': every package of the project venv, pinned."; \
	 $(PY) -m pip freeze --exclude-editable | grep -v '^-e') > requirements-dev.txt

clean: down
	rm -rf .localcloud
