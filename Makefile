# Verdant: `make run` serves the API with a worker and beat; `make test` runs the whole suite.
# Both create .venv and, when DATABASE_URL / REDIS_URL are unset, private PostgreSQL and Redis
# under .data/ (settings/devstack.py).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
# The real WatermelonDB client that tests/sync_client drives (Node 20+, pinned by its lock file).
WMDB_CLIENT := tests/sync/wmdb_client
WMDB_STAMP := $(WMDB_CLIENT)/node_modules/.installed-$(shell cat $(WMDB_CLIENT)/package.json $(WMDB_CLIENT)/package-lock.json | cksum | cut -d' ' -f1)
# The FHIR R4 validator tests/fhir/validate.py runs (official JSON schema + FHIRPath invariants).
FHIR_VALIDATOR := tests/fhir/validator
FHIR_VALIDATOR_STAMP := $(FHIR_VALIDATOR)/node_modules/.installed-$(shell cat $(FHIR_VALIDATOR)/package.json $(FHIR_VALIDATOR)/package-lock.json | cksum | cut -d' ' -f1)

.PHONY: run test lint bench lock migrate manage openapi stop-data load fuzz browser security chromium nginx

$(STAMP): requirements.lock pyproject.toml
	@echo "[setup] installing pinned dependencies into $(VENV) (the first time takes a minute or two)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --disable-pip-version-check --quiet -r requirements.lock
	@rm -f $(VENV)/.installed-* && touch $@
	@echo "[setup] done"

$(WMDB_STAMP): $(WMDB_CLIENT)/package.json $(WMDB_CLIENT)/package-lock.json
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
		&& node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' \
		|| { echo "[setup] Node.js 20 or newer (with npm) is required for the WatermelonDB client tests: install Node 20 (Debian: apt-get install nodejs npm)"; exit 1; }
	@echo "[setup] installing the WatermelonDB test client (npm ci --prefix $(WMDB_CLIENT))"
	@npm ci --prefix $(WMDB_CLIENT) --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
	@rm -f $(WMDB_CLIENT)/node_modules/.installed-* && touch $@
	@echo "[setup] done"

$(FHIR_VALIDATOR_STAMP): $(FHIR_VALIDATOR)/package.json $(FHIR_VALIDATOR)/package-lock.json
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 \
		|| { echo "[setup] Node.js 20 or newer (with npm) is required for the FHIR validator tests: install Node 20 (Debian: apt-get install nodejs npm)"; exit 1; }
	@echo "[setup] installing the FHIR validator (npm ci --prefix $(FHIR_VALIDATOR))"
	@npm ci --prefix $(FHIR_VALIDATOR) --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
	@rm -f $(FHIR_VALIDATOR)/node_modules/.installed-* && touch $@
	@echo "[setup] done"

# Debian's chromium for tests/browser: installed when missing if root with apt-get, else the
# browser tests fail saying so (.ci/ensure-chromium, shared with .ci/run).
chromium:
	@.ci/ensure-chromium

# Debian's nginx for the cells suite's edge proxy (tests/tenants/cells/test_two_cells.py):
# installed when missing if root with apt-get, else that test fails saying so (.ci/ensure-nginx).
nginx:
	@.ci/ensure-nginx

run: $(STAMP)
	@$(PY) -m settings.devstack run

test: $(STAMP) $(WMDB_STAMP) $(FHIR_VALIDATOR_STAMP) chromium nginx
	@$(PY) -m settings.devstack test $(PYTEST_ARGS)

lint: $(STAMP)
	@echo "[lint] ruff" && $(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
	@echo "[lint] mypy" && $(VENV)/bin/mypy .
	@echo "[lint] import-linter" && PYTHONPATH=$(CURDIR)/platform $(VENV)/bin/lint-imports --no-logo
	@echo "[lint] hadolint Dockerfile" && $(VENV)/bin/hadolint Dockerfile
	@echo "[lint] makemigrations --check" && \
		$(PY) -m settings.devstack manage makemigrations --check --dry-run

bench: $(STAMP)
	@$(PY) -m settings.devstack bench $(BENCH_ARGS)

# Load and fault injection on a private stack of its own (docs/reliability.md): 60 s by default.
load: $(STAMP)
	@$(PY) -m tests.load.run --json tests/load/results/load-latest.json $(LOAD_ARGS)

# The hardening suites on their own (docs/testing.md). `make test` runs them too, with a bounded
# fuzz example count; `make fuzz` is the long run (FUZZ_EXAMPLES per operation and role).
fuzz: $(STAMP)
	@FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-100} FUZZ_SHRINK=1 FUZZ_RANDOM=1 $(PY) -m settings.devstack \
		test tests/fuzz \
		-o timeout=1800 $(PYTEST_ARGS)

browser: $(STAMP) chromium
	@$(PY) -m settings.devstack test tests/browser $(PYTEST_ARGS)

security: $(STAMP)
	@$(PY) -m settings.devstack test tests/security $(PYTEST_ARGS)

migrate: $(STAMP)
	@$(PY) -m settings.devstack manage migrate_schemas --noinput

lock:
	@$(PY) -m pip install --quiet uv && $(VENV)/bin/uv pip compile pyproject.toml --extra dev \
		--python-version 3.11 --no-header -o requirements.lock

stop-data:
	@$(PY) -m settings.devstack stop

manage: $(STAMP)
	@$(PY) -m settings.devstack manage $(ARGS)

openapi: $(STAMP)
	@DJANGO_SETTINGS_MODULE=settings.dev $(PY) manage.py spectacular --api-version v1 --validate \
		--fail-on-warn --file docs/openapi.yaml && echo "[openapi] wrote docs/openapi.yaml"
