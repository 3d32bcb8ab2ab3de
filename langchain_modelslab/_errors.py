"""Adapter errors that are also langchain-core's exceptions.

Each class inherits from the ``modelslab_core`` error it stands for *and* the matching
``langchain_core.exceptions.Model*Error``, so ``except modelslab_core.RateLimitError`` and
LangChain's retry and fallback logic (``ModelRateLimitError``) both catch it. Both models wrap
every request path, streams included, in :func:`translated_errors`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from langchain_core.exceptions import (
    ContextOverflowError,
    ModelAPIError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelError,
    ModelInvalidRequestError,
    ModelNotFoundError,
    ModelPermissionDeniedError,
    ModelRateLimitError,
    ModelTimeoutError,
)

from modelslab_core import errors as core

__all__ = [
    "ModelsLabAuthenticationError",
    "ModelsLabBadRequestError",
    "ModelsLabConflictError",
    "ModelsLabConnectionError",
    "ModelsLabContextOverflowError",
    "ModelsLabIncompleteStreamError",
    "ModelsLabInsufficientCreditsError",
    "ModelsLabInvalidResponseError",
    "ModelsLabNotFoundError",
    "ModelsLabParameterError",
    "ModelsLabPermissionDeniedError",
    "ModelsLabProcessingResponseError",
    "ModelsLabRateLimitError",
    "ModelsLabRequestTimeoutError",
    "ModelsLabResponseFormatError",
    "ModelsLabServerError",
    "ModelsLabStatusError",
    "ModelsLabStreamError",
    "ModelsLabTimeoutError",
    "ModelsLabUnprocessableEntityError",
    "translate_error",
]


class ModelsLabAuthenticationError(core.AuthenticationError, ModelAuthenticationError):
    """401, or an ``Invalid Api Key`` envelope."""


class ModelsLabPermissionDeniedError(core.PermissionDeniedError, ModelPermissionDeniedError):
    """403: the key may not do this."""


class ModelsLabInsufficientCreditsError(core.InsufficientCreditsError, ModelPermissionDeniedError):
    """402: no credits left; a permission error to LangChain (never retried, a fallback may run)."""


class ModelsLabBadRequestError(core.BadRequestError, ModelInvalidRequestError):
    """400, or an error envelope that names no other cause."""


class ModelsLabUnprocessableEntityError(core.UnprocessableEntityError, ModelInvalidRequestError):
    """422: the server's validation failed."""


class ModelsLabContextOverflowError(core.BadRequestError, ContextOverflowError):
    """A bad request whose message says the input is longer than the model's context."""


class ModelsLabResponseFormatError(ModelsLabBadRequestError):
    """A bad request that names the response format (``json_schema`` refused): structured output
    asks again in JSON mode on this error only."""


class ModelsLabStatusError(core.APIStatusError, ModelInvalidRequestError):
    """Any other 4xx answer."""


class ModelsLabNotFoundError(core.NotFoundError, ModelNotFoundError):
    """404: unknown model or route."""


class ModelsLabRateLimitError(core.RateLimitError, ModelRateLimitError):
    """429, or a ``Rate limit exceeded`` envelope; ``retry_after`` holds the server's hint."""


class ModelsLabServerError(core.ServerError, ModelAPIError):
    """5xx (also an HTML page from a proxy)."""


class ModelsLabConflictError(core.ConflictError, ModelAPIError):
    """409."""


class ModelsLabRequestTimeoutError(core.RequestTimeoutError, ModelTimeoutError):
    """408: the server gave up waiting for the request."""


class ModelsLabConnectionError(core.APIConnectionError, ModelConnectionError):
    """No answer arrived: the connection failed."""


class ModelsLabTimeoutError(core.APITimeoutError, ModelTimeoutError):
    """The request took longer than ``timeout``."""


class ModelsLabInvalidResponseError(core.InvalidResponseError, ModelAPIError):
    """A 2xx answer that is not a valid API response."""

    is_retryable = False


class ModelsLabProcessingResponseError(core.ProcessingResponseError, ModelAPIError):
    """A ``{"status": "processing"}`` body instead of an answer."""

    is_retryable = False


class ModelsLabStreamError(core.StreamError, ModelAPIError):
    """An error event inside a stream. ``is_retryable`` (a new call from scratch may succeed) is
    True while the adapter's ``retryable`` is False on purpose: it never restarts a stream the
    caller may have read from."""


class ModelsLabIncompleteStreamError(core.IncompleteStreamError, ModelConnectionError):
    """The stream was cut off before ``[DONE]``. ``is_retryable`` True, ``retryable`` False, on
    purpose (see :class:`ModelsLabStreamError`)."""


class ModelsLabParameterError(core.ParameterError, ModelInvalidRequestError):
    """A parameter out of the documented range (raised before any request)."""


#: The adapter's class → the class here that stands for it (its first base); the first class in
#: an error's MRO found here wins. A context overflow and a refused response format are told
#: apart by the message (:func:`_target_class`).
_CLASSES: dict[type, type[core.ModelsLabError]] = {
    cls.__bases__[0]: cls
    for cls in map(globals().get, __all__)
    if isinstance(cls, type)
    and not issubclass(cls.__bases__[0], ModelError)  # an adapter class, not one of ours
    and cls is not ModelsLabContextOverflowError
}

_OVERFLOW_HINTS = (
    "context length",
    "context window",
    "context_length_exceeded",
    "maximum context",
    "prompt is too long",
)


def _target_class(error: core.ModelsLabError) -> type[core.ModelsLabError] | None:
    if (
        isinstance(error, core.BadRequestError)
        and not isinstance(error, core.UnprocessableEntityError)
        and any(hint in error.message.lower() for hint in _OVERFLOW_HINTS)
    ):
        return ModelsLabContextOverflowError
    if core.names_response_format(error):  # a 400, 422 or envelope that names the format
        return ModelsLabResponseFormatError
    return next((_CLASSES[cls] for cls in type(error).__mro__ if cls in _CLASSES), None)


def translate_error(error: core.ModelsLabError) -> Exception:
    """``error`` as the class that is also langchain-core's exception for it, with the same
    message, status, request id, body and retry hint. Errors already translated, and configuration
    errors, come back as they are."""
    target = None if isinstance(error, ModelError) else _target_class(error)
    if target is None:
        return error
    translated = target.__new__(target)
    translated.__dict__.update(error.__dict__)
    translated.args = error.args
    return translated


@contextmanager
def translated_errors() -> Iterator[None]:
    """Re-raise every adapter error raised inside the block through :func:`translate_error`."""
    try:
        yield
    except core.ModelsLabError as error:
        translated = translate_error(error)
        if translated is error:
            raise
        raise translated from error
