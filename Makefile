# `make demo` and `make test` are all a fresh machine needs: each builds .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

lint: $(STAMP)
	$(BIN)/ruff check modelslab_core langchain_modelslab llama_index_modelslab tests integration_tests examples benchmarks
	$(BIN)/ruff format --check modelslab_core langchain_modelslab llama_index_modelslab tests integration_tests examples benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy modelslab_core langchain_modelslab llama_index_modelslab

test: lint typecheck
	$(BIN)/python -m pytest -q -W error::ResourceWarning tests integration_tests

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
