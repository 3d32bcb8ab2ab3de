# ruff: noqa: F403, F405 (type checkers read the public names from the submodules, below)
"""The shared ModelsLab adapter: config, clients, wire models, SSE, retries and errors.

Imports no framework. ``langchain_modelslab`` and ``llama_index_modelslab`` translate to and from
the wire models here and hold no HTTP of their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_names
from ._version import __version__

if TYPE_CHECKING:  # for type checkers: each name as its module declares it, loaded lazily below
    from ._pools import *
    from .accumulate import *
    from .client import *
    from .config import *
    from .errors import *
    from .profiles import *
    from .retry import *
    from .streaming import *
    from .types import *
    from .validation import *

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
