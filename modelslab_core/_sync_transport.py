"""An ``httpx.BaseTransport`` over the standard library's ``http.client``, with a keep-alive pool.

Why: per call, httpx's default sync transport (httpcore + h11) costs about twice the whole
round trip of ``http.client`` on loopback (measured: 0.35 ms against 0.15 ms for the same request
to the local server); at a ModelsLab answer's size that overhead is most of what a client adds.
The clients keep speaking httpx types; only the bytes travel through ``http.client``.
``docs/benchmarks.md`` has the figures. Requests through a proxy (``HTTP(S)_PROXY``) keep
httpx's own transport, which knows proxies.
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
from collections.abc import Iterator

import httpx

__all__ = ["HTTPClientTransport"]

_READ = 64 * 1024
_Key = tuple[str, str, int]


def _ssl_context() -> ssl.SSLContext:
    try:
        import certifi
    except ImportError:  # pragma: no cover - httpx depends on certifi
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


def _is_dead(conn: http.client.HTTPConnection) -> bool:
    """An idle keep-alive connection that the server closed (readable means EOF or junk)."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _translate(exc: BaseException, *, connecting: bool) -> httpx.HTTPError:
    message = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError | socket.timeout):
        return httpx.ConnectTimeout(message) if connecting else httpx.ReadTimeout(message)
    if connecting or isinstance(exc, ConnectionRefusedError | socket.gaierror):
        return httpx.ConnectError(message)
    if isinstance(exc, http.client.IncompleteRead | http.client.RemoteDisconnected):
        return httpx.RemoteProtocolError(message)
    return httpx.ReadError(message)


class _Body(httpx.SyncByteStream):
    """The response body; gives the connection back to the pool when read to the end."""

    def __init__(
        self,
        transport: HTTPClientTransport,
        key: _Key,
        conn: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
    ) -> None:
        self._transport = transport
        self._key = key
        self._conn: http.client.HTTPConnection | None = conn
        self._response = response
        self._complete = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            while True:
                data = self._response.read1(_READ)
                if not data:
                    break
                yield data
        except (OSError, http.client.HTTPException) as exc:
            self._discard()
            raise _translate(exc, connecting=False) from exc
        missing = self._response.length
        if missing:
            # read1() answers b"" when the peer closes before Content-Length is reached (no
            # IncompleteRead, unlike read()): a body cut short is a broken connection, as in httpx.
            self._discard()
            raise httpx.RemoteProtocolError(
                f"peer closed connection without sending complete message body "
                f"({missing} bytes missing)"
            )
        self._complete = True

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        # A body read to its end leaves the connection ready for the next request.
        reusable = self._complete and not self._response.will_close
        self._response.close()
        if reusable:
            self._transport._release(self._key, conn)
        else:
            conn.close()


class HTTPClientTransport(httpx.BaseTransport):
    """Thread-safe: idle connections wait in a per-host list; each request takes one or opens
    a new one."""

    def __init__(self, max_keepalive: int = 64) -> None:
        self._idle: dict[_Key, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._max_keepalive = max_keepalive
        self._ssl: ssl.SSLContext | None = None

    def _connect(self, key: _Key, timeout: float | None) -> http.client.HTTPConnection:
        scheme, host, port = key
        if scheme == "https":
            if self._ssl is None:
                self._ssl = _ssl_context()
            return http.client.HTTPSConnection(host, port, timeout=timeout, context=self._ssl)
        return http.client.HTTPConnection(host, port, timeout=timeout)

    def _acquire(self, key: _Key) -> http.client.HTTPConnection | None:
        with self._lock:
            idle = self._idle.get(key)
            while idle:
                conn = idle.pop()
                if not _is_dead(conn):
                    return conn
                conn.close()
        return None

    def _release(self, key: _Key, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self._max_keepalive:
                idle.append(conn)
                return
        conn.close()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        key: _Key = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        timeouts = request.extensions.get("timeout", {})
        read_timeout = timeouts.get("read")
        conn = self._acquire(key)
        connecting = conn is None
        if conn is None:
            conn = self._connect(key, timeouts.get("connect"))
        body = request.read()
        try:
            if connecting:
                conn.connect()
                connecting = False
            if conn.sock is not None:
                conn.sock.settimeout(read_timeout)
            target = url.raw_path.decode("ascii")
            conn.putrequest(request.method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in request.headers.raw:
                conn.putheader(name.decode("latin-1"), value.decode("latin-1"))
            conn.endheaders(body or None)
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise _translate(exc, connecting=connecting) from exc
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.getheaders()]
        return httpx.Response(
            status_code=response.status,
            headers=headers,
            stream=_Body(self, key, conn, response),
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": response.reason.encode()},
        )

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()
