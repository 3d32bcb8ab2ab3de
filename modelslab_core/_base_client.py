"""Everything the sync and async clients share that does no I/O: URLs, headers, bodies, response
parsing and error translation. The clients in ``client.py`` only move bytes and sleep."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from . import __version__
from .config import BASE_URL_ENV, CHAT_BASE_URL, ClientConfig, KeyPlacement
from .errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    InvalidResponseError,
    ProcessingResponseError,
    error_from_body,
    error_from_response,
)
from .retry import RetryPolicy, parse_retry_after
from .types import ModelList

__all__ = ["BaseClient"]

T = TypeVar("T", bound=BaseModel)

USER_AGENT = f"modelslab-integrations/{__version__} (python; httpx)"
_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "cf-ray")


def request_id_of(headers: httpx.Headers) -> str | None:
    for name in _REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return str(value)
    return None


def translate_transport_error(exc: httpx.HTTPError) -> APIError:
    """An httpx failure with no usable response → our connection or timeout error."""
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"request timed out: {type(exc).__name__}")
    detail = str(exc) or type(exc).__name__
    return APIConnectionError(f"connection failed: {detail}")


def _scrub(content: bytes, secret: str) -> bytes:
    return content.replace(secret.encode(), b"***") if secret else content


def _invalid(status_code: int, headers: httpx.Headers, message: str, body: Any = None) -> APIError:
    return InvalidResponseError(
        message, status_code=status_code, request_id=request_id_of(headers), body=body
    )


def parse_body(
    status_code: int,
    headers: httpx.Headers,
    content: bytes,
    model: type[T],
    secret: str,
    *,
    require_choices: bool = True,
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
            _scrub(content, secret),
            request_id=request_id_of(headers),
            retry_after_header=parse_retry_after(headers.get("retry-after")),
        )
    try:
        body = json.loads(content)
    except ValueError:
        snippet = " ".join(_scrub(content, secret)[:200].decode("utf-8", "replace").split())
        raise _invalid(
            status_code,
            headers,
            f"the API answered HTTP {status_code} with a body that is not JSON: {snippet!r}",
        ) from None
    if not isinstance(body, dict):
        raise _invalid(
            status_code,
            headers,
            f"the API answered HTTP {status_code} with JSON that is not an object",
        )
    if error_from_body(status_code, body) is not None:
        error = error_from_body(
            status_code,
            json.loads(_scrub(content, secret)),
            request_id=request_id_of(headers),
            retry_after_header=parse_retry_after(headers.get("retry-after")),
        )
        assert error is not None
        raise error
    if str(body.get("status", "")).lower() in ("processing", "queued", "pending"):
        raise ProcessingResponseError(
            "the API queued the request instead of answering "
            f"(status={body.get('status')!r}, id={body.get('id')!r}, eta={body.get('eta')!r})",
            status_code=status_code,
            request_id=request_id_of(headers),
            body=body,
        )
    if require_choices and not body.get("choices"):
        # Absent or empty (``"choices": []``): no answer at all, never an empty one.
        raise _invalid(
            status_code,
            headers,
            f"the API answered without choices: keys {sorted(body)[:10]}",
            body,
        )
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise _invalid(
            status_code,
            headers,
            f"the API answered with an unexpected shape: {exc.errors()[0]['msg']}",
            body,
        ) from None


class BaseClient:
    """Settings and request building; no I/O."""

    _default_base_url = CHAT_BASE_URL
    _base_url_env = BASE_URL_ENV

    def __init__(
        self,
        api_key: str | SecretStr | None = None,
        base_url: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        default_headers: Mapping[str, str] | None = None,
        key_placement: KeyPlacement = "bearer",
        max_in_flight: int | None = None,
        config: ClientConfig | None = None,
    ) -> None:
        self.config = config or ClientConfig.build(
            api_key,
            base_url,
            timeout=timeout,
            max_retries=max_retries,
            default_headers=default_headers,
            key_placement=key_placement,
            max_in_flight=max_in_flight,
            default_base_url=self._default_base_url,
            base_url_env=self._base_url_env,
        )
        self.retry_policy = RetryPolicy(max_retries=self.config.max_retries)
        self._secret = self.config.api_key.get_secret_value()
        self._headers = self._build_headers()
        # A request without a body (the model list, a GET) cannot carry the key in the body:
        # it goes in ``x-api-key``, as the OpenAPI spec documents for that endpoint.
        self._bodyless_headers = self._headers
        if self.config.key_placement == "body":
            self._bodyless_headers = httpx.Headers({**self._headers, "x-api-key": self._secret})
        self._urls: dict[str, httpx.URL] = {}
        self._extensions = {"timeout": httpx.Timeout(self.config.timeout).as_dict()}

    @property
    def base_url(self) -> str:
        return self.config.base_url

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def _build_headers(self) -> httpx.Headers:
        # Built once: an httpx.Headers is copied per request, not re-normalised.
        headers = {
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
            "user-agent": USER_AGENT,
        }
        headers.update({k.lower(): v for k, v in self.config.default_headers.items()})
        placement = self.config.key_placement
        if placement == "bearer":
            headers["authorization"] = f"Bearer {self._secret}"
        elif placement == "x-api-key":
            headers["x-api-key"] = self._secret
        return httpx.Headers(headers)

    def _url(self, path: str) -> httpx.URL:
        # Parsed once per path: URL parsing was a tenth of an async call's CPU time.
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = httpx.URL(f"{self.config.base_url}/{path}")
        return url

    def _encode(self, body: dict[str, Any]) -> bytes:
        """The JSON body, with the key inside when ``key_placement="body"`` (seed 000)."""
        if self.config.key_placement == "body":
            body = {"key": self._secret, **body}
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()

    def _parse(self, response: httpx.Response, model: type[T]) -> T:
        return parse_body(
            response.status_code,
            response.headers,
            response.content,
            model,
            self._secret,
            require_choices=model is not ModelList,
        )

    @staticmethod
    def _is_event_stream(response: httpx.Response) -> bool:
        return response.status_code < 300 and "text/event-stream" in response.headers.get(
            "content-type", ""
        )
