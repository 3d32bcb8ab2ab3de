"""The shared async pool's transport: ``httpx-aiohttp``'s, with the two bounds it misses.

- **Each write waits at most ``timeout``.** aiohttp has no write timeout (``httpx-aiohttp`` maps
  httpx's connect, read and pool timeouts to aiohttp's and drops ``write``), and starts its read
  timeout only once the body is sent: a large prompt to a server that stops reading hung for
  ever. A body longer than :data:`PACE` goes out in pieces of that size through httpx's streaming
  body (its ``content-length`` kept), and a watchdog (``asyncio.timeout``) gives each piece
  ``write`` seconds; past that, ``httpx.WriteTimeout``, as httpx's own transport raises.
- **A body the server breaks off ends the read.** When aiohttp's C parser meets a malformed
  chunked body it closes the connection without telling the reader of that body, which then
  waits for ever (its read timeout dropped too); a read that starts after that gets a bare
  ``RuntimeError``, and the pure-Python parser (``AIOHTTP_NO_EXTENSIONS=1``) raises its
  ``TransferEncodingError`` unmapped. The response's body here ends with ``httpx.ReadError`` in
  every case: a read left waiting is woken when the connection closes before the body ended.

Its aiohttp session keeps no cookies (the pools serve every account of the process). Everything
else (TLS, proxies, pooling, HTTP framing) is aiohttp's and httpx's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import aiohttp
import httpx
from aiohttp.http_exceptions import HttpProcessingError
from httpx_aiohttp import HttpxAiohttpClient
from httpx_aiohttp.transport import AiohttpResponseStream, AiohttpTransport

from ._pools import _KeepsNoCookies

__all__ = ["PACE", "SharedAsyncClient"]

#: Bodies up to this size fit aiohttp's write buffer (its high-water mark is 64 KiB): they are
#: handed over in one piece and never wait for the server to read. Longer ones are paced.
PACE = 64 * 1024


class _PacedBody(httpx.AsyncByteStream):
    """``content`` in pieces of :data:`PACE` bytes; the watchdog gives each one ``write``
    seconds to be taken by the socket, and is disarmed when the last one was."""

    def __init__(self, content: bytes, watchdog: asyncio.Timeout, write: float) -> None:
        self._content = content
        self._watchdog = watchdog
        self._write = write

    async def __aiter__(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        content = self._content
        for start in range(0, len(content), PACE):
            self._watchdog.reschedule(loop.time() + self._write)
            yield content[start : start + PACE]
        self._watchdog.reschedule(None)


class _WatchedBody(httpx.AsyncByteStream):
    """The response body of ``httpx-aiohttp``, whose reads end when the connection closes
    before the body did (see the module's docstring)."""

    def __init__(self, inner: AiohttpResponseStream, response: aiohttp.ClientResponse) -> None:
        self._inner = inner
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        connection = self._response.connection
        protocol = connection.protocol if connection is not None else None
        closed = protocol.closed if protocol is not None else None
        wake = partial(_cut_short, self._response.content)
        if closed is not None:
            closed.add_done_callback(wake)
        try:
            async for chunk in self._inner:
                yield chunk
        except RuntimeError as exc:  # aiohttp's StreamReader, read after the connection went
            raise httpx.ReadError(f"the connection closed before the body ended: {exc}") from exc
        except HttpProcessingError as exc:  # the pure-Python parser's, which nothing maps
            raise httpx.ReadError(f"the body broke off: {type(exc).__name__}: {exc}") from exc
        finally:
            if closed is not None:
                closed.remove_done_callback(wake)

    async def aclose(self) -> None:
        await self._inner.aclose()


def _cut_short(content: aiohttp.StreamReader, _closed: asyncio.Future[None]) -> None:
    if not content.is_eof() and content.exception() is None:
        content.set_exception(
            aiohttp.ClientPayloadError("the connection closed before the body ended")
        )


class _Transport(AiohttpTransport):
    def get_client(self) -> aiohttp.ClientSession:
        """``httpx-aiohttp``'s session with a cookie jar that keeps nothing: the shared pools
        serve every account of the process (its connector is taken over, its session dropped
        unused; the pools give the transport no session of their own)."""
        built = super().get_client()
        connector = built.connector
        built.detach()
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        write = request.extensions.get("timeout", {}).get("write")
        content = getattr(request, "_content", None)  # set when the body is bytes (ours)
        if write is None or content is None or len(content) <= PACE:
            response = await super().handle_async_request(request)
        else:
            response = await self._paced(request, content, write)
        stream = response.stream
        if isinstance(stream, AiohttpResponseStream):
            response.stream = _WatchedBody(stream, stream._aiohttp_response)
        return response

    async def _paced(self, request: httpx.Request, content: bytes, write: float) -> httpx.Response:
        try:
            async with asyncio.timeout(None) as watchdog:
                paced = httpx.Request(
                    request.method,
                    request.url,
                    headers=request.headers,  # with its content-length: not chunked
                    content=_PacedBody(content, watchdog, write),
                    extensions=request.extensions,
                )
                return await super().handle_async_request(paced)
        except TimeoutError:
            if not watchdog.expired():
                raise
            raise httpx.WriteTimeout(
                f"a write of the request body waited more than {write:g} s", request=request
            ) from None


class SharedAsyncClient(_KeepsNoCookies, HttpxAiohttpClient):
    """A shared per-loop async pool: ``HttpxAiohttpClient`` on :class:`_Transport`, for direct
    and proxied connections (the pools give it no transport of their own), keeping no cookies."""

    def _init_transport(self, *args: Any, **kwargs: Any) -> httpx.AsyncBaseTransport:
        return _rebuilt(super()._init_transport(*args, **kwargs))

    def _init_proxy_transport(self, *args: Any, **kwargs: Any) -> httpx.AsyncBaseTransport:
        return _rebuilt(super()._init_proxy_transport(*args, **kwargs))


def _rebuilt(transport: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
    """``transport`` (an unused ``AiohttpTransport``) as a :class:`_Transport`: same settings."""
    if type(transport) is AiohttpTransport:
        transport.__class__ = _Transport
    return transport
