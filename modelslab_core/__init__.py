"""The shared ModelsLab adapter: config, clients, wire models, SSE, retries and errors.

Imports no framework. ``langchain_modelslab`` and ``llama_index_modelslab`` translate to and from
the wire models here and hold no HTTP of their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_names
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
        ClientSettings,
        InvalidSettingError,
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

#: The modules of the public names, cheapest first. A name loads its module on first use, so
#: ``import modelslab_core`` (and the pytest plugin, which every project that installs us loads)
#: costs no httpx or pydantic import.
_MODULES = (
    ".errors",
    ".config",
    ".profiles",
    ".retry",
    ".types",
    ".validation",
    ".accumulate",
    ".streaming",
    "._pools",
    ".client",
)

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
    "ClientSettings",
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
    "InvalidSettingError",
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

__getattr__, __dir__ = lazy_names(__name__, __all__, _MODULES, globals())
