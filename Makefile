# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
HOST ?= 0.0.0.0
PORT ?= 8000

.PHONY: run test lint format migrate install stop-db clean-data bench fuzz soak

$(STAMP): requirements/base.txt requirements/dev.txt requirements/prod.txt
	@command -v $(PYTHON) >/dev/null || (echo "$(PYTHON) not found; set PYTHON=python3.x (3.11+)"; exit 1)
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements/dev.txt -r requirements/prod.txt
	touch $(STAMP)

install: $(STAMP)

migrate: $(STAMP)
	$(PY) manage.py migrate_schemas --noinput

# Serve on http://localhost:$(PORT) (platform) and http://demo.localhost:$(PORT) (tenant demo).
run: migrate
	IDP_PUBLIC_PORT=$(PORT) $(PY) manage.py bootstrap_demo
	IDP_PUBLIC_PORT=$(PORT) $(PY) manage.py runserver $(HOST):$(PORT)

test: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	DJANGO_SETTINGS_MODULE=config.settings.test $(PY) manage.py makemigrations --check --dry-run
	DJANGO_SETTINGS_MODULE=config.settings.test $(PY) manage.py spectacular --validate --fail-on-warn --urlconf config.urls_tenant --file /dev/null
	DJANGO_SETTINGS_MODULE=config.settings.test $(PY) manage.py spectacular --validate --fail-on-warn --urlconf config.urls_public --file /dev/null

# The benchmark suite (bench/suite.py): every hot path through a real gunicorn on 127.0.0.1
# with the production settings, on a fresh database it drops afterwards; one table printed,
# JSON and Markdown in bench/results/. QUICK=1: every row, scaled down (under 2 minutes).
# Fails if a target is missed.
bench: $(STAMP)
	QUICK=$(QUICK) $(PY) bench/suite.py

# The fuzz tests of `make test` (tests/fuzz: schemathesis against the OpenAPI documents, a
# few deterministic examples per operation) with FUZZ_EXAMPLES random examples each (about
# 8 minutes on 2 cores at 300).
FUZZ_EXAMPLES ?= 300
fuzz: $(STAMP)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_RANDOM=1 $(BIN)/pytest -p no:cacheprovider tests/fuzz $(PYTEST_ARGS)

# Mixed logins, refreshes and permission checks against gunicorn with the production
# settings for SOAK_SECONDS on 127.0.0.1; fails on any error but throttling, or when a
# worker's memory grows past the bound (bench/soak.py).
SOAK_SECONDS ?= 180
soak: $(STAMP)
	SOAK_SECONDS=$(SOAK_SECONDS) $(PY) bench/soak.py

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The embedded PostgreSQL outlives `make run` and `make test` (it is shared between them).
stop-db:
	@test -f .data/postgres/postmaster.pid && kill -TERM $$(head -1 .data/postgres/postmaster.pid) && echo "embedded PostgreSQL stopped" || echo "embedded PostgreSQL is not running"

clean-data: stop-db
	rm -rf .data
