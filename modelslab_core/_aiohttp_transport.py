"""An ``httpx.AsyncBaseTransport`` over aiohttp's connection pool.

Why: httpx's own async pool slows down as requests in flight grow (measured on loopback, raw
httpx: ~1,950 calls/s with 1 in flight, ~200 with 64), while aiohttp's pool holds up (~2,400
through this transport at 64 and 256). The clients keep speaking httpx types; only the bytes
travel through aiohttp. ``docs/benchmarks.md`` has the figures. Imported lazily: aiohttp costs
import time that a sync-only user should not pay.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import httpx

__all__ = ["AiohttpTransport"]

_CHUNK = 64 * 1024


def _translate(exc: BaseException) -> httpx.HTTPError:
    """aiohttp's failure → the httpx exception an httpx transport would have raised."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ServerTimeoutError | asyncio.TimeoutError):
        return httpx.ReadTimeout(message)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message)
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError(message)
    if isinstance(exc, aiohttp.ClientConnectionError | ConnectionError):
        return httpx.ReadError(message)
    return httpx.TransportError(message)


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_chunked(_CHUNK):
                yield chunk
        except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
            raise _translate(exc) from exc

    async def aclose(self) -> None:
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Sends httpx requests through one ``aiohttp.ClientSession`` (created on first use, inside
    the running loop)."""

    def __init__(self, limits: httpx.Limits) -> None:
        self._limits = limits
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._limits.max_connections or 0,
            keepalive_timeout=self._limits.keepalive_expiry or 15,
        )
        return aiohttp.ClientSession(
            connector=connector,
            auto_decompress=True,
            skip_auto_headers=("User-Agent", "Content-Type", "Accept-Encoding"),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session
        if session is None or session.closed:
            session = self._session = self._open()
        timeouts = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=timeouts.get("pool"),
            sock_connect=timeouts.get("connect"),
            sock_read=timeouts.get("read"),
        )
        try:
            response = await session.request(
                request.method,
                str(request.url),
                headers=request.headers.multi_items(),
                data=request.content or None,
                allow_redirects=False,
                timeout=timeout,
            )
        except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
            raise _translate(exc) from exc
        headers = list(response.raw_headers)
        if response.headers.get("content-encoding"):
            # aiohttp has decompressed the body: httpx must not decode it again.
            dropped = (b"content-encoding", b"content-length")
            headers = [(k, v) for k, v in headers if k.lower() not in dropped]
        return httpx.Response(
            status_code=response.status,
            headers=headers,
            stream=_ResponseStream(response),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
