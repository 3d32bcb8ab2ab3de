"""LangChain's standard integration suite for ChatModelsLab: against the local ModelsLab server,
and against the live API when ``MODELSLAB_API_KEY`` is set."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests

from langchain_modelslab import ChatModelsLab
from modelslab_core.testing import LocalModelsLab

LOCAL_KEY = "local-test-key"


class _ModelsLabCapabilities(ChatModelIntegrationTests):
    """What ModelsLab's chat API offers, as the standard suite asks it."""

    @property
    def chat_model_class(self) -> type[ChatModelsLab]:
        return ChatModelsLab

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return "meta-llama-Llama-3.3-70B-Instruct-Turbo"


class TestChatModelsLabLocal(_ModelsLabCapabilities):
    """The suite over real sockets against ``modelslab_core.testing.LocalModelsLab``."""

    server: LocalModelsLab

    @pytest.fixture(autouse=True)
    def _local_server(self, modelslab_server: LocalModelsLab) -> Iterator[None]:
        modelslab_server.api_key = LOCAL_KEY
        type(self).server = modelslab_server
        yield

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "model": "meta-llama-3-8B-instruct",
            "api_key": LOCAL_KEY,
            "base_url": self.server.base_url,
        }


@pytest.mark.live
@pytest.mark.skipif(
    not os.environ.get("MODELSLAB_API_KEY"), reason="MODELSLAB_API_KEY is not set (live API)"
)
class TestChatModelsLabLive(_ModelsLabCapabilities):
    """The same suite against the live ModelsLab API (key from ``MODELSLAB_API_KEY``)."""

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": "meta-llama-3-8B-instruct"}
