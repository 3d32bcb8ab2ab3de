"""LangChain's standard unit suite for ChatModelsLab."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_modelslab import ChatModelsLab

# The module, not the function that langchain_core.load re-exports under the same name.
load_module = importlib.import_module("langchain_core.load.load")
_CLASS_PATH = ("langchain_modelslab", "chat_models", "ChatModelsLab")


class TestChatModelsLabStandard(ChatModelUnitTests):
    @pytest.fixture(autouse=True)
    def _trusted_by_langchain(self, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
        """List the class as a trusted partner class, as langchain-core does for its partners.

        ``test_serdes`` loads with ``allowed_objects="all"``, which since langchain-core 1.7
        admits only classes in core's own serialization mapping; a package outside it is allowed
        by adding it there (users pass ``allowed_objects=[ChatModelsLab]``, tested in
        ``test_lc_chat_model.py``). Undone after each test.
        """
        monkeypatch.setitem(load_module.ALL_SERIALIZABLE_MAPPINGS, _CLASS_PATH, _CLASS_PATH)
        monkeypatch.setattr(load_module, "_default_class_paths_cache", {})
        yield

    @property
    def chat_model_class(self) -> type[ChatModelsLab]:
        return ChatModelsLab

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": "meta-llama-3-8B-instruct", "api_key": "test-key"}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return (
            {"MODELSLAB_API_KEY": "env-key", "MODELSLAB_BASE_URL": "https://example.test/llm"},
            {"model": "deepseek-ai-DeepSeek-V3"},
            {"api_key": "env-key", "base_url": "https://example.test/llm"},
        )

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def supports_image_urls(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return "deepseek-ai-DeepSeek-V3"
