"""Errors of the HTTP stack (httpx, and aiohttp under the async pool) → ours. Below both the
clients and the streams, which import it."""

from __future__ import annotations

import sys
from types import TracebackType

import httpx

from .errors import APIConnectionError, APIError, APITimeoutError

__all__ = ["is_transport_error", "translate_transport_error", "translated"]


def _aiohttp_error(exc: BaseException) -> bool:
    aiohttp = sys.modules.get("aiohttp")
    return aiohttp is not None and isinstance(exc, aiohttp.ClientError)


def is_transport_error(exc: BaseException) -> bool:
    """An error of the HTTP stack: httpx's, or aiohttp's where the aiohttp transport lets one
    through unmapped (``httpx-aiohttp`` maps only some of them)."""
    return isinstance(exc, httpx.HTTPError) or _aiohttp_error(exc)


def translate_transport_error(exc: BaseException) -> APIError:
    """An HTTP-stack failure with no usable response → our connection or timeout error.

    Judged by the aiohttp error underneath when there is one: ``httpx-aiohttp`` reports a server
    that hung up (``ServerDisconnectedError``) as an ``httpx.ConnectTimeout``."""
    cause = exc.__cause__
    if cause is not None and _aiohttp_error(cause):
        exc = cause
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return APITimeoutError(f"request timed out: {type(exc).__name__}: {detail}")
    return APIConnectionError(f"connection failed: {type(exc).__name__}: {detail}")


class _Translated:
    """``with translated:``: an HTTP-stack error raised inside leaves as ours; others pass."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if isinstance(exc, Exception) and is_transport_error(exc):
            raise translate_transport_error(exc) from None


translated = _Translated()
