# The two set-up commands of the README are `make dev` and `make test`; both install what
# they need (pinned) into .venv and node_modules first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP_PY := $(VENV)/.installed
STAMP_NODE := node_modules/.installed
STAMP_WEB := web/node_modules/.installed
# The web client's build inputs (web/dist is rebuilt when one changes).
WEB_SRC := $(shell find web/src web/index.html web/vite.config.ts web/vite-licences.ts web/licences web/tsconfig.json -type f 2>/dev/null)
POLICY := $(wildcard ../shared/privacy-policy.txt)

.PHONY: install dev up down status test test-unit lint bench lock deploy clean web chromium orthanc

install: $(STAMP_PY) $(STAMP_NODE) $(STAMP_WEB) chromium orthanc

$(STAMP_PY): requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

$(STAMP_NODE): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(STAMP_WEB): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Headless Chromium for the browser tests: Debian's (the test tool's own download does
# not work here); installed once, as root.
chromium:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

# Orthanc 1.10 and its DICOMweb plugin (Debian's packages) for the Orthanc peer test and
# the bench's anchors (tests/orthanc_peer.py, bench/orthanc.py); installed once, as root.
# Each run starts its own Orthanc with its own config: the packaged service is not used.
orthanc:
	@test -x /usr/sbin/Orthanc -a -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq orthanc orthanc-dicomweb; }

# The web client (Vite build into web/dist, served by the local hosting server and Hosting),
# then the OHIF Viewer into web/dist/ohif (the pinned npm tarball, integrity checked, cached
# in .cache/ohif; its paths moved under /ohif/; docs/web.md, "OHIF Viewer"). Vite empties
# web/dist, so the viewer is rebuilt after it.
web: web/dist/index.html web/dist/ohif/index.html

web/dist/index.html: $(STAMP_WEB) $(WEB_SRC) $(POLICY)
	cd web && npm run build --silent

OHIF_SRC := $(wildcard web/ohif/*.json web/ohif/*.js web/ohif/*.ts web/ohif/licences/*) \
	$(wildcard tools/ohif_*.py) $(wildcard web/licences/*)
web/dist/ohif/index.html: web/dist/index.html $(STAMP_PY) $(OHIF_SRC) web/src/config.ts web/src/idle.ts
	$(PY) -m tools.ohif_build

dev: install web
	$(PY) -m localcloud dev

up: install web
	$(PY) -m localcloud up

down:
	$(PY) -m localcloud down

status: install
	$(VENV)/bin/pacs status

test: install web
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: install
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check functions localcloud cli tests tools

# BENCH_ARGS: see `python -m bench --help` (e.g. BENCH_ARGS="--workloads W1 --no-search").
BENCH_ARGS ?= --big-archive-gb 2
bench: install
	PYTHONPATH=functions:. $(PY) -m bench $(BENCH_ARGS)

# Dry run (prints every command) unless APPLY=1; see docs/deploy.md.
deploy: install
	@test -n "$(PROJECT)" -a -n "$(REGION)" || { echo "usage: make deploy PROJECT=<project-id> REGION=<region> [APPLY=1]" >&2; exit 2; }
	$(PY) -m deploy --project $(PROJECT) --region $(REGION) $(if $(APPLY),--apply,)

lock:
	$(PY) -m pip install -q -r requirements.in
	(echo "# Generated from requirements.in by 'make lock': every package of the project venv, pinned."; \
	 $(PY) -m pip freeze --all --exclude-editable | grep -v -e '^-e' -e '^pip==') > requirements-dev.txt

clean: down
	rm -rf .localcloud
