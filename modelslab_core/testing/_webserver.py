"""The local server's HTTP layer: aiohttp's low-level web server, answering in HTTP/1.1 and
counting the connections of its :class:`~._server.LocalModelsLab`."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.http import HttpVersion11

if TYPE_CHECKING:
    from ._server import LocalModelsLab

__all__ = ["WebServer"]

_READ_LIMIT = 1024 * 1024
_MAX_BODY = 64 * 1024 * 1024
#: aiohttp's own complaints (malformed requests, which it answers 400) are not ours to log.
_aiohttp_logger = logging.getLogger("modelslab_core.testing._server.aiohttp")
_aiohttp_logger.addHandler(logging.NullHandler())
_aiohttp_logger.propagate = False


class WebServer(web.Server):
    """aiohttp's low-level server, answering in HTTP/1.1 and counting connections."""

    def __init__(self, owner: LocalModelsLab) -> None:
        super().__init__(
            owner._handle,
            request_factory=self._request,
            keepalive_timeout=24 * 3600.0,  # idle keep-alive connections stay open
            max_line_size=_READ_LIMIT,
            max_field_size=_READ_LIMIT,
            access_log=None,
            logger=_aiohttp_logger,
        )
        self._owner = owner

    def _request(
        self, message: Any, payload: Any, protocol: Any, writer: Any, task: Any
    ) -> web.BaseRequest:
        # Every answer is HTTP/1.1 (an HTTP/1.0 request's connection still closes after it).
        message = message._replace(version=HttpVersion11)
        loop = asyncio.get_running_loop()
        return web.BaseRequest(
            message, payload, protocol, writer, task, loop, client_max_size=_MAX_BODY
        )

    def connection_made(self, handler: web.RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        owner = self._owner
        owner._transports[handler] = transport
        owner.connections_opened += 1
        owner.max_open_connections_seen = max(
            owner.max_open_connections_seen, len(owner._transports)
        )

    def connection_lost(
        self, handler: web.RequestHandler, exc: BaseException | None = None
    ) -> None:
        super().connection_lost(handler, exc)
        self._owner._transports.pop(handler, None)
