"""The fast suite's fixtures (``tests/llama_index/conftest.py``): the local server checking a
test key, an LLM on it, no retry delays and no ModelsLab variables (except in live tests)."""

from tests.llama_index.conftest import _no_env, _no_retry_delay, llm, server

__all__ = ["_no_env", "_no_retry_delay", "llm", "server"]
