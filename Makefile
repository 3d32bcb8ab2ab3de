# `make demo` and `make test` are all a fresh machine needs: each builds .venv on first use
# (.ci/venv: Python 3.11 or newer; a .venv from an older Python is rebuilt).
# `make demo` installs only what the demo needs (the package and both frameworks); `make test`
# adds the test, lint, type-check and docs tools.
VENV := .venv
BIN := $(VENV)/bin
SOURCES := modelslab_core langchain_modelslab llama_index_modelslab tests integration_tests examples benchmarks conftest.py

.PHONY: demo test test-load lint typecheck pytest docs bench bench-docs venv-demo venv-dev clean redis-server bench-burst

venv-demo:
	@.ci/venv all

venv-dev:
	@.ci/venv all,dev,docs

demo: venv-demo
	@$(BIN)/python examples/demo.py

lint: venv-dev
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)

typecheck: venv-dev
	$(BIN)/mypy modelslab_core langchain_modelslab llama_index_modelslab

# The fleet gate's tests need a real redis-server: installed from the system's packages when it
# is missing and we run as root (CI); elsewhere those tests say how to install it and skip.
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; } || true

# Every behaviour, at a size that keeps `make test` within a few minutes: a covering sample of the
# large matrices (conftest.py), 30 derandomized examples per fuzz test, the load tests at their
# small size, on $(WORKERS) pytest-xdist workers, a test file per worker at a time (WORKERS=0: in
# one process).
WORKERS ?= 2
pytest: venv-dev redis-server
	$(BIN)/python -m pytest -q -W error::ResourceWarning -m "not load" -n $(WORKERS) \
		--dist loadfile tests integration_tests

# The soak work `make test` leaves out: the load and memory tests at full size, every case of
# the sampled matrices, and 400 random examples per fuzz test (.ci/run runs it after make test).
test-load: venv-dev redis-server
	$(BIN)/python -m pytest -q -W error::ResourceWarning -m "load or covering or hypothesis" \
		--full-matrix --hypothesis-profile=thorough tests integration_tests

# The API reference (docs/reference/) and the pages, built from the docstrings into .site/
# (untracked); --strict fails on a broken reference or link. Offline: no theme or plugin
# downloads anything at build time.
docs: venv-dev
	$(BIN)/mkdocs build --strict --site-dir .site

test: lint typecheck pytest docs

# Results and charts go to .bench/ (untracked): measuring never rewrites a tracked file.
bench: venv-dev redis-server
	$(BIN)/python -m benchmarks --out .bench

# Only the bursts at the account queue (one process, and P processes with and without Redis).
bench-burst: venv-dev redis-server
	$(BIN)/python -m benchmarks --burst-only --out .bench

# Refresh docs/benchmarks.md and its charts from a new run (commit them when they look right).
bench-docs: venv-dev
	$(BIN)/python -m benchmarks --out docs/benchmarks --update-doc docs/benchmarks.md

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .site .bench
