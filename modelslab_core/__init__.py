"""The shared ModelsLab adapter: config, clients, wire models, SSE, retries and errors.

Imports no framework. ``langchain_modelslab`` and ``llama_index_modelslab`` translate to and from
the wire models here and hold no HTTP of their own.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from ._pools import close_shared_pools
    from .accumulate import StreamAccumulator
    from .client import (
        AsyncModelsLabClient,
        AsyncModelsLabClientBase,
        AsyncModelsLabCompletionsClient,
        ModelsLabClient,
        ModelsLabClientBase,
        ModelsLabCompletionsClient,
    )
    from .config import (
        API_KEY_ENV,
        BASE_URL_ENV,
        BASE_URLS,
        CHAT_BASE_URL,
        COMPLETIONS_BASE_URL,
        COMPLETIONS_BASE_URL_ENV,
        UNCENSORED_BASE_URL,
        ClientConfig,
        KeyPlacement,
    )
    from .errors import (
        APIConnectionError,
        APIError,
        APIStatusError,
        APITimeoutError,
        AuthenticationError,
        BadRequestError,
        ConfigurationError,
        ConflictError,
        IncompleteStreamError,
        InsufficientCreditsError,
        InvalidResponseError,
        MissingAPIKeyError,
        ModelsLabError,
        NotFoundError,
        ParameterError,
        PermissionDeniedError,
        ProcessingResponseError,
        RateLimitError,
        RequestTimeoutError,
        ServerError,
        StreamError,
        UnprocessableEntityError,
    )
    from .profiles import DEFAULT_PROFILE, PROFILES, ModelProfile, get_profile
    from .retry import RetryPolicy
    from .streaming import AsyncStream, Stream
    from .types import (
        ChatChoice,
        ChatCompletion,
        ChatCompletionChunk,
        ChatMessage,
        ChatRequest,
        ChoiceDelta,
        ChunkChoice,
        Completion,
        CompletionChoice,
        CompletionRequest,
        FunctionCall,
        FunctionCallDelta,
        ModelInfo,
        ModelList,
        ToolCall,
        ToolCallDelta,
        Usage,
    )
    from .validation import check_params

#: Where each public name lives. Names load on first use, so ``import modelslab_core`` (and the
#: pytest plugin, which every project that installs us loads) costs no httpx or pydantic import.
_LAZY: dict[str, str] = {
    "close_shared_pools": "._pools",
    "StreamAccumulator": ".accumulate",
    "AsyncModelsLabClient": ".client",
    "AsyncModelsLabClientBase": ".client",
    "AsyncModelsLabCompletionsClient": ".client",
    "ModelsLabClient": ".client",
    "ModelsLabClientBase": ".client",
    "ModelsLabCompletionsClient": ".client",
    "API_KEY_ENV": ".config",
    "BASE_URL_ENV": ".config",
    "BASE_URLS": ".config",
    "CHAT_BASE_URL": ".config",
    "COMPLETIONS_BASE_URL": ".config",
    "COMPLETIONS_BASE_URL_ENV": ".config",
    "UNCENSORED_BASE_URL": ".config",
    "ClientConfig": ".config",
    "KeyPlacement": ".config",
    "APIConnectionError": ".errors",
    "APIError": ".errors",
    "APIStatusError": ".errors",
    "APITimeoutError": ".errors",
    "AuthenticationError": ".errors",
    "BadRequestError": ".errors",
    "ConfigurationError": ".errors",
    "ConflictError": ".errors",
    "IncompleteStreamError": ".errors",
    "InsufficientCreditsError": ".errors",
    "InvalidResponseError": ".errors",
    "MissingAPIKeyError": ".errors",
    "ModelsLabError": ".errors",
    "NotFoundError": ".errors",
    "ParameterError": ".errors",
    "PermissionDeniedError": ".errors",
    "ProcessingResponseError": ".errors",
    "RateLimitError": ".errors",
    "RequestTimeoutError": ".errors",
    "ServerError": ".errors",
    "StreamError": ".errors",
    "UnprocessableEntityError": ".errors",
    "DEFAULT_PROFILE": ".profiles",
    "PROFILES": ".profiles",
    "ModelProfile": ".profiles",
    "get_profile": ".profiles",
    "RetryPolicy": ".retry",
    "AsyncStream": ".streaming",
    "Stream": ".streaming",
    "ChatChoice": ".types",
    "ChatCompletion": ".types",
    "ChatCompletionChunk": ".types",
    "ChatMessage": ".types",
    "ChatRequest": ".types",
    "ChoiceDelta": ".types",
    "ChunkChoice": ".types",
    "Completion": ".types",
    "CompletionChoice": ".types",
    "CompletionRequest": ".types",
    "FunctionCall": ".types",
    "FunctionCallDelta": ".types",
    "ModelInfo": ".types",
    "ModelList": ".types",
    "ToolCall": ".types",
    "ToolCallDelta": ".types",
    "Usage": ".types",
    "check_params": ".validation",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "API_KEY_ENV",
    "BASE_URLS",
    "BASE_URL_ENV",
    "CHAT_BASE_URL",
    "COMPLETIONS_BASE_URL",
    "COMPLETIONS_BASE_URL_ENV",
    "DEFAULT_PROFILE",
    "PROFILES",
    "UNCENSORED_BASE_URL",
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncModelsLabClient",
    "AsyncModelsLabClientBase",
    "AsyncModelsLabCompletionsClient",
    "AsyncStream",
    "AuthenticationError",
    "BadRequestError",
    "ChatChoice",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatMessage",
    "ChatRequest",
    "ChoiceDelta",
    "ChunkChoice",
    "ClientConfig",
    "Completion",
    "CompletionChoice",
    "CompletionRequest",
    "ConfigurationError",
    "ConflictError",
    "FunctionCall",
    "FunctionCallDelta",
    "IncompleteStreamError",
    "InsufficientCreditsError",
    "InvalidResponseError",
    "KeyPlacement",
    "MissingAPIKeyError",
    "ModelInfo",
    "ModelList",
    "ModelProfile",
    "ModelsLabClient",
    "ModelsLabClientBase",
    "ModelsLabCompletionsClient",
    "ModelsLabError",
    "NotFoundError",
    "ParameterError",
    "PermissionDeniedError",
    "ProcessingResponseError",
    "RateLimitError",
    "RequestTimeoutError",
    "RetryPolicy",
    "ServerError",
    "Stream",
    "StreamAccumulator",
    "StreamError",
    "ToolCall",
    "ToolCallDelta",
    "UnprocessableEntityError",
    "Usage",
    "__version__",
    "check_params",
    "close_shared_pools",
    "get_profile",
]
