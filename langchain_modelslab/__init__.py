"""LangChain integration for ModelsLab's LLM API (install with the ``[langchain]`` extra).

``ChatModelsLab`` (chat completions) and ``ModelsLabLLM`` (text completions), and the error
classes that are both ``modelslab_core`` errors and langchain-core's ``Model*Error`` exceptions.
"""

from __future__ import annotations

try:
    import langchain_core  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by a test that hides langchain_core
    raise ImportError(
        "langchain_modelslab needs langchain-core. Install it with: "
        'pip install "modelslab-integrations[langchain]"'
    ) from exc

from ._errors import (
    ModelsLabAuthenticationError,
    ModelsLabBadRequestError,
    ModelsLabConflictError,
    ModelsLabConnectionError,
    ModelsLabContextOverflowError,
    ModelsLabIncompleteStreamError,
    ModelsLabInsufficientCreditsError,
    ModelsLabInvalidResponseError,
    ModelsLabNotFoundError,
    ModelsLabParameterError,
    ModelsLabPermissionDeniedError,
    ModelsLabProcessingResponseError,
    ModelsLabRateLimitError,
    ModelsLabRequestTimeoutError,
    ModelsLabServerError,
    ModelsLabStatusError,
    ModelsLabStreamError,
    ModelsLabTimeoutError,
    ModelsLabUnprocessableEntityError,
    translate_error,
)
from .chat_models import DEFAULT_MODEL, ChatModelsLab
from .llms import DEFAULT_COMPLETION_MODEL, ModelsLabLLM

__all__ = [
    "DEFAULT_COMPLETION_MODEL",
    "DEFAULT_MODEL",
    "ChatModelsLab",
    "ModelsLabAuthenticationError",
    "ModelsLabBadRequestError",
    "ModelsLabConflictError",
    "ModelsLabConnectionError",
    "ModelsLabContextOverflowError",
    "ModelsLabIncompleteStreamError",
    "ModelsLabInsufficientCreditsError",
    "ModelsLabInvalidResponseError",
    "ModelsLabLLM",
    "ModelsLabNotFoundError",
    "ModelsLabParameterError",
    "ModelsLabPermissionDeniedError",
    "ModelsLabProcessingResponseError",
    "ModelsLabRateLimitError",
    "ModelsLabRequestTimeoutError",
    "ModelsLabServerError",
    "ModelsLabStatusError",
    "ModelsLabStreamError",
    "ModelsLabTimeoutError",
    "ModelsLabUnprocessableEntityError",
    "translate_error",
]
