"""Everything the sync and async clients share that does no I/O: URLs, headers, bodies, response
parsing and error translation. The clients in ``client.py`` only move bytes and sleep."""

from __future__ import annotations

import json
import logging
import platform
import time
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from ._call import timed
from ._version import __version__
from .config import BASE_URL_ENV, CHAT_BASE_URL, ClientConfig
from .errors import (
    APIError,
    APIStatusError,
    ConfigurationError,
    InvalidResponseError,
    ParameterError,
    body_error,
    body_kind,
    error_from_response,
    excerpt,
    redact,
    redact_error,
)
from .flow import FlowGate, account_of, gate_for
from .retry import CallPlan, RetryPolicy, parse_retry_after
from .types import ModelList

__all__ = ["BaseClient", "next_hop", "user_agent"]

T = TypeVar("T", bound=BaseModel)
H = TypeVar("H", httpx.Client, httpx.AsyncClient)

logger = logging.getLogger("modelslab_core")

_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "cf-ray")


def user_agent(transport: str) -> str:
    """``modelslab-integrations/0.1.0 httpx/0.28.1 aiohttp/3.x (CPython 3.11.7)``: ours, then the
    HTTP stack that really carries the bytes (``transport`` names it; empty for httpx's own)."""
    stack = f"httpx/{httpx.__version__}"
    if transport:
        try:
            stack += f" {transport}/{version(transport)}"
        except PackageNotFoundError:  # pragma: no cover - only in a broken environment
            stack += f" {transport}/unknown"
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return f"modelslab-integrations/{__version__} {stack} ({python})"


def next_hop(
    response: httpx.Response, hops: int, max_hops: int, secret: str
) -> httpx.Request | None:
    """The request a redirect asks for, or None when ``response`` is no redirect.

    307 and 308 keep the method and the body: followed (httpx builds the request, dropping the
    ``Authorization`` header when the redirect leaves the origin). A 301, 302 or 303 answering a
    POST would turn it into a GET without its body: an error naming the ``Location`` instead, and
    so is a redirect to another origin (host, scheme or port) when anything the request would
    carry there holds the key (``secret``): a header (``x-api-key``, a ``default_headers`` entry)
    or the body (``key_placement="body"``, a ``key`` field among extra parameters), whatever the
    placement; httpx drops only ``Authorization``.
    """
    following = response.next_request
    if following is None:
        return None
    location = response.headers.get("location", "")
    request = response.request
    answered = f"the API answered {request.method} {request.url} with HTTP {response.status_code}"
    if following.method != request.method:
        message = (
            f"{answered}, a redirect to {location!r} that would turn it into a "
            f"{following.method} and drop its body; set base_url to the new address"
        )
    elif _leaves_origin(request.url, following.url) and _carries_key(following, secret):
        message = (
            f"{answered}, a redirect to another origin ({location!r}) that would take the API "
            "key there; set base_url to the new address"
        )
    elif hops >= max_hops:
        message = f"more than {max_hops} redirects, the last to {location!r}"
    else:
        return following
    raise APIStatusError(
        message, status_code=response.status_code, request_id=request_id_of(response.headers)
    )


def _leaves_origin(old: httpx.URL, new: httpx.URL) -> bool:
    """Where httpx drops ``Authorization``: another scheme, host or port, except an upgrade from
    http to https on the same host with default ports."""
    if (old.scheme, old.host, old.port) == (new.scheme, new.host, new.port):
        return False
    upgrade = (old.scheme, new.scheme) == ("http", "https") and old.host == new.host
    return not (upgrade and old.port is None and new.port is None)


def _carries_key(request: httpx.Request, secret: str) -> bool:
    """Whether the key is anywhere in ``request``: its URL, any header, or its body (as it is, or
    escaped as JSON would write it)."""
    if not secret:
        return False
    if secret in str(request.url) or any(secret in value for value in request.headers.values()):
        return True
    body = request.read()
    forms = {
        secret.encode(),
        json.dumps(secret)[1:-1].encode(),
        json.dumps(secret, ensure_ascii=False)[1:-1].encode(),
    }
    return any(form in body for form in forms)


def request_id_of(headers: httpx.Headers) -> str | None:
    for name in _REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return str(value)
    return None


def parse_body(
    status_code: int,
    headers: httpx.Headers,
    content: bytes,
    model: type[T],
    secret: str,
    *,
    require_choices: bool = True,
    endpoint: str | None = None,
) -> T:
    """A complete HTTP answer → the wire model, or the right :class:`APIError`.

    ModelsLab reports errors with HTTP 200 too (``{"status": "error", ...}``, ``messege``), and
    other ModelsLab APIs answer ``{"status": "processing"}`` for queued jobs: neither is an answer.
    Only what goes into an error is scrubbed of the key (an answer is the user's data), and
    headers are read only for errors: the success path stays short.
    """
    if status_code >= 400 or status_code < 200:
        raise error_from_response(
            status_code,
            content,
            request_id=request_id_of(headers),
            retry_after_header=parse_retry_after(headers.get("retry-after")),
            secret=secret,
            endpoint=endpoint,
        )
    body = None  # what an InvalidResponseError carries
    try:
        parsed = json.loads(content)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than json reads
        snippet = " ".join(excerpt(content.decode("utf-8", "replace"), secret).split())
        problem = f"HTTP {status_code} with a body that is not JSON: {snippet!r}"
    else:
        if not isinstance(parsed, dict):
            problem = f"HTTP {status_code} with JSON that is not an object"
        elif body_kind(parsed) != "answer":
            error = body_error(
                status_code,
                parsed,
                request_id=request_id_of(headers),
                retry_after_header=parse_retry_after(headers.get("retry-after")),
                endpoint=endpoint,
            )
            assert error is not None
            redact_error(error, secret)
            raise error
        elif require_choices and not parsed.get("choices"):
            # Absent or empty (``"choices": []``): no answer at all, never an empty one.
            body, problem = parsed, f"without choices: keys {sorted(parsed)[:10]}"
        else:
            try:
                return model.model_validate(parsed)
            except ValidationError as exc:
                body = parsed
                problem = f"with an unexpected shape: {exc.errors()[0]['msg']}"
    raise InvalidResponseError(
        f"the API answered {problem}",
        status_code=status_code,
        request_id=request_id_of(headers),
        body=body,
    )


class BaseClient(Generic[H]):
    """Settings and request building; no I/O. ``H`` is the httpx client class of the twin.

    Settings come as one :class:`ClientConfig` (``config=``), or as keyword arguments that
    :meth:`ClientConfig.build` resolves. ``http_client`` is an httpx client of the user's (its
    proxies, certificates, hooks and transport are then used); without it the process's shared
    pool is."""

    _default_base_url = CHAT_BASE_URL
    _base_url_env = BASE_URL_ENV
    #: The transport under the shared pool, named in the User-Agent ("" for httpx's own).
    _transport_name = ""

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        base_url: str | None = None,
        *,
        http_client: H | None = None,
        config: ClientConfig | None = None,
        **settings: Any,
    ) -> None:
        """``settings``: any field of :class:`~modelslab_core.config.ClientSettings`
        (``timeout``, ``max_retries``, ``default_headers``, ``key_placement``, ...), checked
        there; or one ready ``config``."""
        given = [*settings, *(["api_key"] if api_key is not None else [])]
        given += ["base_url"] if base_url is not None else []
        if config is not None and given:
            raise ConfigurationError(
                f"pass either config=... or the settings themselves, not both (got {given})"
            )
        self.config = config or ClientConfig.build(
            api_key,
            base_url,
            default_base_url=self._default_base_url,
            base_url_env=self._base_url_env,
            **settings,
        )
        self._http_client: H | None = http_client
        self.retry_policy = RetryPolicy(max_retries=self.config.max_retries)
        self._secret = self.config.api_key.get_secret_value()
        self._headers = self._build_headers()
        # A request without a body (the model list, a GET) cannot carry the key in the body:
        # it goes in ``x-api-key``, as ModelsLab's OpenAPI spec documents for that endpoint.
        self._bodyless_headers = self._headers
        if self.config.key_placement == "body":
            self._bodyless_headers = httpx.Headers({**self._headers, "x-api-key": self._secret})
        self._urls: dict[str, httpx.URL] = {}
        self._timeout = httpx.Timeout(self.config.timeout)
        self._timeout_extension = self._timeout.as_dict()
        self._pool_headers: tuple[httpx.Headers, httpx.Headers, httpx.Headers] | None = None
        self._account: tuple[str, str] | None = None

    @property
    def base_url(self) -> str:
        return self.config.base_url

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    @property
    def flow_gate(self) -> FlowGate | None:
        """The gate of this client's account (None with ``flow_control=False``), shared by every
        client of the process (and, with ``redis_url``, by every process using the key): its
        ``stats()`` give the limit, the requests in flight, the waiters and the 429s seen. A
        client's ``max_in_flight`` pins the account's limit when the client first uses the gate
        (the latest one wins)."""
        config = self.config
        if not config.flow_control:
            return None
        if self._account is None:
            self._account = account_of(self._secret, config.base_url)
            if config.max_in_flight is not None:
                gate_for(self._account, redis_url=config.redis_url).pin(config.max_in_flight)
        return gate_for(self._account, redis_url=config.redis_url)

    def _plan(self, gated: bool) -> CallPlan:
        """A new call's retry plan; ``gated`` unless it is no queued request (the model list)."""
        config = self.config
        return CallPlan(
            self.retry_policy,
            gated=gated and config.flow_control,
            rate_limit_budget=config.rate_limit_budget,
            total_timeout=config.total_timeout,
        )

    def _build_headers(self) -> httpx.Headers:
        # Built once: an httpx.Headers is copied per request, not re-normalised.
        transport = "" if self._http_client is not None else self._transport_name
        headers = {
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
            "user-agent": user_agent(transport),
        }
        headers.update({k.lower(): v for k, v in self.config.default_headers.items()})
        placement = self.config.key_placement
        if placement == "bearer":
            headers["authorization"] = f"Bearer {self._secret}"
        elif placement == "x-api-key":
            headers["x-api-key"] = self._secret
        return httpx.Headers(headers)

    def _request(self, http: H, path: str, body: bytes | None, plan: CallPlan) -> httpx.Request:
        """A POST of ``body`` (a GET without one: the model list), each network step bounded by
        what is left of the call's deadline (:func:`timed`)."""
        method = "POST" if body is not None else "GET"
        if self._http_client is not None:
            headers = self._headers if body is not None else self._bodyless_headers
            request = http.build_request(
                method, self._url(path), content=body, headers=headers, timeout=self._timeout
            )
            return timed(request, plan, self.config.timeout)
        # The shared pool has no base URL, params or cookies, and its headers never change: its
        # merge with ours is done once, not per call as build_request does. (Keyed by the pool's
        # headers, not the pool: a client must not keep a closed loop's pool.)
        merged = self._pool_headers
        if merged is None or merged[0] is not http.headers:
            with_body, bodyless = httpx.Headers(http.headers), httpx.Headers(http.headers)
            with_body.update(self._headers)  # as build_request merges them
            bodyless.update(self._bodyless_headers)
            merged = self._pool_headers = (http.headers, with_body, bodyless)
        request = httpx.Request(
            method,
            self._url(path),
            content=body,
            headers=merged[1] if body is not None else merged[2],
            extensions={"timeout": self._timeout_extension},
        )
        return timed(request, plan, self.config.timeout)

    def _retry_delay(self, error: APIError, plan: CallPlan) -> float:
        """After a failed attempt: the seconds to sleep before the next one, or (raised) the
        error that ends the call, the key masked (a server may echo it back)."""
        redact_error(error, self._secret)
        outcome = plan.after_error(error, time.monotonic())
        if outcome is error:
            raise error
        if isinstance(outcome, APIError):
            raise outcome from error
        logger.info("retrying in %.2fs after %s", outcome, type(error).__name__)
        return outcome

    @staticmethod
    def _log(response: httpx.Response, model: str | None, started: float, plan: CallPlan) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "ModelsLab %s %s model=%s status=%s request_id=%s latency=%.3fs retries=%d",
                response.request.method,
                response.request.url.path,
                model,
                response.status_code,
                request_id_of(response.headers),
                time.monotonic() - started,
                plan.retries + plan.rate_limits,
            )

    def _url(self, path: str) -> httpx.URL:
        # Parsed once per path: URL parsing was a tenth of an async call's CPU time.
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = httpx.URL(f"{self.config.base_url}/{path}")
        return url

    def _encode(self, body: dict[str, Any]) -> bytes:
        """The JSON body, with the key inside when ``key_placement="body"`` (ModelsLab's legacy
        style). NaN and infinities (not JSON), a body nested too deeply to encode and text that is
        not valid Unicode (a lone surrogate) are refused: a :class:`ParameterError` naming where,
        never the body (which may hold the key)."""
        try:
            text = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except ValueError as exc:
            raise ParameterError(f"the request cannot be sent as JSON: {exc}") from None
        except RecursionError:
            raise ParameterError("the request cannot be sent as JSON: nested too deeply") from None
        try:
            encoded = text.encode()
        except UnicodeEncodeError as exc:
            around = text[max(exc.start - 24, 0) : exc.end + 24]
            around = around.encode("utf-8", "backslashreplace").decode("utf-8")
            raise ParameterError(
                f"the request holds text that is not valid Unicode (U+{ord(text[exc.start]):04X}, "
                f"a lone surrogate, at character {exc.start} of the JSON body): {around!r}"
            ) from None
        if self.config.key_placement == "body":
            key = json.dumps(self._secret).encode()
            return b'{"key":' + key + (b"," + encoded[1:] if encoded != b"{}" else b"}")
        return encoded

    def _parse(self, response: httpx.Response, content: bytes, model: type[T]) -> T:
        return parse_body(
            response.status_code,
            response.headers,
            content,
            model,
            self._secret,
            require_choices=model is not ModelList,
            # What was called, for an error message (the key masked, though no URL we build
            # holds it).
            endpoint=redact(f"{response.request.method} {response.request.url}", self._secret),
        )

    @staticmethod
    def _is_event_stream(response: httpx.Response) -> bool:
        return response.status_code < 300 and "text/event-stream" in response.headers.get(
            "content-type", ""
        )
