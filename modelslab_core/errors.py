"""One error hierarchy for everything the ModelsLab API (or the way to it) can do wrong.

``ModelsLabError`` is the root; ``APIStatusError`` subclasses carry the server's message, the HTTP
status and the request id. :func:`error_from_body` and :func:`error_from_response` are the one
place a status and a body become an error: every shape ModelsLab's documentation shows
(https://docs.modelslab.com: HTTP-200 ``{"status": "error"}`` envelopes, ``messege``, 429 with
``retry_after``) and OpenAI-style bodies. No error holds the API key: :func:`redact_error` masks
it, always before server text is cut (a cut key would no longer match the mask).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, Literal, Self

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConfigurationError",
    "ConflictError",
    "IncompleteStreamError",
    "InsufficientCreditsError",
    "InvalidResponseError",
    "MissingAPIKeyError",
    "ModelsLabError",
    "NotFoundError",
    "ParameterError",
    "PermissionDeniedError",
    "ProcessingResponseError",
    "RateLimitError",
    "RequestTimeoutError",
    "ServerError",
    "StreamError",
    "UnprocessableEntityError",
    "body_error",
    "body_kind",
    "error_from_body",
    "error_from_response",
    "excerpt",
    "names_response_format",
    "redact",
    "redact_error",
    "retry_after_seconds",
]

#: How much server text an error message quotes.
EXCERPT_LIMIT = 200


class ModelsLabError(Exception):
    """Root of every error this package raises."""


class ConfigurationError(ModelsLabError, ValueError):
    """The client was set up wrongly (raised before any request)."""


class MissingAPIKeyError(ConfigurationError):
    """No API key was passed and ``MODELSLAB_API_KEY`` is not set."""


class ParameterError(ModelsLabError, ValueError):
    """A request parameter is out of the range the API documents (raised before any request)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class APIError(ModelsLabError):
    """Something went wrong talking to the API.

    ``message`` is the server's own text where it gave one; ``status_code`` is the HTTP status
    (``200`` for ModelsLab's HTTP-200 error envelopes, ``None`` when no response arrived).
    """

    #: Whether the retry policy may try again after this error.
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        request_id: str | None = None,
        body: Any = None,
        code: str | None = None,
        error_type: str | None = None,
        retry_after: float | None = None,
        endpoint: str | None = None,
    ) -> None:
        self.message = message
        #: The method and URL that was called (``POST https://.../chat/completions``), when known.
        self.endpoint = endpoint
        #: The server's hint (``Retry-After`` header or ``retry_after`` body field), in seconds.
        self.retry_after = retry_after
        self.status_code = status_code
        self.request_id = request_id
        self.body = body
        self.code = code
        self.error_type = error_type
        # (template, whole server text) of a message that quotes the server (see quoting).
        self._quote: tuple[str, str] | None = None
        super().__init__(self._describe())

    @classmethod
    def quoting(cls, template: str, text: str, **kwargs: Any) -> Self:
        """An error whose message is ``template`` with ``{}`` (or ``{!r}``) filled by at most
        :data:`EXCERPT_LIMIT` characters of the server's ``text``, kept whole (never shown) so
        that :func:`redact_error` masks a key in it before cutting it again."""
        error = cls(template.format(excerpt(text)), **kwargs)
        error._quote = (template, text)
        return error

    def _describe(self) -> str:
        parts = []
        if self.status_code is not None:
            where = f" from {self.endpoint}" if self.endpoint else ""
            parts.append(f"HTTP {self.status_code}{where}")
        if self.code:
            parts.append(f"code={self.code}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        if self.retry_after is not None:
            parts.append(f"retry after {self.retry_after:g} s")
        suffix = f" ({', '.join(parts)})" if parts else ""
        return f"{self.message}{suffix}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status_code={self.status_code!r})"


class APIStatusError(APIError):
    """The server answered with an error (an HTTP error status, or an HTTP-200 error envelope)."""


class BadRequestError(APIStatusError):
    """400: the server refused the request as malformed."""


class UnprocessableEntityError(BadRequestError):
    """422: validation failed on the server (``The messages field is required.``)."""


class AuthenticationError(APIStatusError):
    """401, or ModelsLab's HTTP-200 ``Invalid Api Key`` envelope: the key is missing or wrong."""


class PermissionDeniedError(AuthenticationError):
    """403: the key is not allowed to do this."""


class InsufficientCreditsError(APIStatusError):
    """402: the account has no credits left. Never retried."""


class NotFoundError(APIStatusError):
    """404: unknown route or model."""


class ConflictError(APIStatusError):
    """409: a conflicting request; retried."""

    retryable = True


class RequestTimeoutError(APIStatusError):
    """408: the server timed out waiting for the request; retried."""

    retryable = True


class RateLimitError(APIStatusError):
    """429: too many queued requests. ``retry_after`` is the server's hint in seconds."""

    retryable = True


class ServerError(APIStatusError):
    """5xx: the server or a proxy in front of it failed; retried."""

    retryable = True


class APIConnectionError(APIError):
    """No response arrived: the connection failed or broke. Retried."""

    retryable = True


class APITimeoutError(APIConnectionError):
    """The request took longer than ``timeout``. Retried."""


class InvalidResponseError(APIError):
    """A 2xx answer that is not a valid API response (not JSON, or the wrong shape)."""


class ProcessingResponseError(InvalidResponseError):
    """A ``{"status": "processing"}`` body: a queued job, not an answer. Never taken for one."""


class StreamError(APIError):
    """A stream failed after it started: an error event that names no known cause (a rate
    limit, a bad key or no credits in an event come as their own classes).

    Not retried by the adapter (the caller may have read the first chunks), but retryable for
    LangChain's ``is_retryable``: calling the model again from scratch may succeed.
    """


class IncompleteStreamError(StreamError):
    """The stream ended without ``data: [DONE]``: the answer is cut off, not short. Not retried by
    the adapter, retryable for LangChain (see :class:`StreamError`)."""


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: InsufficientCreditsError,
    403: PermissionDeniedError,
    404: NotFoundError,
    408: RequestTimeoutError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}

#: The class of an HTTP-200 error report whose message names no known cause.
_UNNAMED = BadRequestError

# Words in an HTTP-200 error envelope's message that tell us which class it really is.
_HINTS: tuple[tuple[type[APIStatusError], tuple[str, ...]], ...] = (
    (AuthenticationError, ("api key", "apikey", "api_key", "unauthorized", "unauthenticated")),
    (RateLimitError, ("rate limit", "too many", "queued requests")),
    (InsufficientCreditsError, ("credit", "insufficient", "balance", "subscription", "wallet")),
)


def redact(text: str, secret: str | None) -> str:
    """Return ``text`` with every occurrence of ``secret`` masked."""
    return text.replace(secret, "***") if secret else text


def excerpt(text: str, secret: str | None = None, *, limit: int = EXCERPT_LIMIT) -> str:
    """At most ``limit`` characters of server ``text`` for an error message: ``secret`` masked
    first, then cut. Cutting first could split a key into a head the mask no longer matches."""
    return redact(text, secret)[:limit]


def _redact_value(value: Any, secret: str) -> Any:
    if isinstance(value, str):
        return redact(value, secret)
    if isinstance(value, Mapping):
        return {_redact_value(k, secret): _redact_value(v, secret) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(v, secret) for v in value)
    return value


def redact_error(error: BaseException, secret: str) -> None:
    """Mask ``secret`` in ``error`` in place, wherever a server that echoed it put it: the
    message, ``args`` and ``body`` of an :class:`APIError`, and the errors chained to it. A chained
    error hidden with ``raise ... from None`` (a ``json`` or ``pydantic`` error holding the raw
    answer) is dropped. The clients apply it to every error they raise."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and secret and id(current) not in seen:
        seen.add(id(current))
        if current.__suppress_context__:
            current.__context__ = None
        if isinstance(current, APIError):
            quote = getattr(current, "_quote", None)
            current.body = _redact_value(current.body, secret)
            current.endpoint = redact(current.endpoint or "", secret) or None
            if quote is not None:
                # Mask the whole server text, then cut it again: never cut, then mask.
                template, text = quote[0], redact(quote[1], secret)
                current._quote = (template, text)
                current.message = template.format(excerpt(text))
                current.args = (current._describe(),)
            else:
                current.message = redact(current.message, secret)
                current.args = tuple(_redact_value(a, secret) for a in current.args)
        current = current.__cause__ or current.__context__


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, list):
        joined = "; ".join(t for t in (_as_text(v) for v in value) if t)
        return joined or None
    if isinstance(value, Mapping):
        # Laravel-style {"field": ["message", ...]}
        return _as_text([_as_text(v) for v in value.values()])
    return str(value)


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?inf(inity)?", re.IGNORECASE)


def retry_after_seconds(value: Any) -> float | None:
    """A wait in seconds from a ``Retry-After`` value or ModelsLab's ``retry_after`` body field (a
    number, or a string holding one), or None when it is not a usable wait.

    Defined outcomes for hostile values: NaN, a negative number, a bool, an empty or non-numeric
    string and any other type are no hint at all (None: the normal backoff applies); infinity (also
    ``"inf"`` or ``"1e400"``) is kept, a wait longer than any cap, so the error is raised at once.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    if isinstance(value, str) and not _NUMBER.fullmatch(value.strip()):
        return None  # float() also takes "1_000" and "nan"; a header holds digits
    try:
        seconds = float(value)
    except OverflowError:  # an int too large for a float
        return math.inf
    except ValueError:  # what str.strip() drops and float() does not ("\x1f")
        return None
    return None if math.isnan(seconds) or seconds < 0 else seconds


#: ``status`` values of a ModelsLab body that reports an error (with HTTP 200 too).
ERROR_STATUSES = frozenset({"error", "failed", "failure"})
#: ``status`` values of a queued job (other ModelsLab APIs answer so): not an answer.
QUEUED_STATUSES = frozenset({"processing", "queued", "pending"})

BodyKind = Literal["error", "queued", "answer"]


def body_kind(body: Mapping[str, Any]) -> BodyKind:
    """What a ModelsLab JSON object is: an error report, a queued job or an answer. The one
    classification, used for whole bodies and for stream events alike: an ``error`` object or
    non-empty ``error`` text, or a ``status`` of :data:`ERROR_STATUSES`, is an error; a ``status``
    of :data:`QUEUED_STATUSES` a queued job; anything else an answer."""
    error = body.get("error")
    if isinstance(error, Mapping) or (isinstance(error, str) and error.strip()):
        return "error"
    status = body.get("status")
    if status is None:
        return "answer"
    status = str(status).lower()
    if status in ERROR_STATUSES:
        return "error"
    return "queued" if status in QUEUED_STATUSES else "answer"


def error_from_body(
    status_code: int,
    body: Any,
    *,
    request_id: str | None = None,
    retry_after_header: float | None = None,
    fallback_text: str | None = None,
    endpoint: str | None = None,
) -> APIStatusError | None:
    """Map a parsed body to an error, or return None when a 2xx body is not an error.

    Used for non-2xx answers (always an error) and for 2xx bodies, which ModelsLab also uses to
    report errors (``{"status": "error", "message": ...}``).
    """
    message = code = error_type = None
    retry_after = retry_after_header
    if isinstance(body, Mapping):
        kind = body_kind(body)
        if kind != "error" and status_code < 400:
            return None
        error = body.get("error")
        if isinstance(error, Mapping):  # OpenAI style
            message = _as_text(error.get("message")) or _as_text(error) or "Unknown error"
            code = None if error.get("code") is None else str(error.get("code"))
            error_type = None if error.get("type") is None else str(error.get("type"))
        elif isinstance(error, str) and error.strip():
            message = error.strip()
        elif kind == "error":  # "messege" is how ModelsLab's legacy endpoints spell it
            message = (
                _as_text(body.get("message"))
                or _as_text(body.get("messege"))
                or _as_text(body.get("errors"))
                or "Unknown error"
            )
        else:  # an HTTP error status with a body of no documented error shape
            message = _as_text(body.get("message")) or _as_text(body.get("detail"))
        if retry_after is None:
            retry_after = retry_after_seconds(body.get("retry_after"))
    elif status_code < 400:
        return None
    message = message or fallback_text or "the server gave no error message"

    return _class_for(status_code, message)(
        message,
        status_code=status_code,
        request_id=request_id,
        body=body,
        code=code,
        error_type=error_type,
        retry_after=retry_after,
        endpoint=endpoint,
    )


def body_error(
    status_code: int,
    body: Mapping[str, Any],
    *,
    request_id: str | None = None,
    retry_after_header: float | None = None,
    endpoint: str | None = None,
    in_stream: bool = False,
) -> APIError | None:
    """The error a 2xx JSON object stands for (a whole body, or one event of a stream), or None
    when it is an answer (see :func:`body_kind`).

    An error report maps as :func:`error_from_body` maps it; in a stream, one that names no known
    cause (no rate limit, key or credits) is a :class:`StreamError`. A queued job is a
    :class:`ProcessingResponseError`: never taken for an (empty) answer."""
    kind = body_kind(body)
    if kind == "answer":
        return None
    if kind == "queued":
        what = "streaming an answer" if in_stream else "answering"
        return ProcessingResponseError(
            f"the API queued the request instead of {what} (status={body.get('status')!r}, "
            f"id={body.get('id')!r}, eta={body.get('eta')!r})",
            status_code=status_code,
            request_id=request_id,
            body=body,
            endpoint=endpoint,
        )
    error = error_from_body(
        status_code,
        body,
        request_id=request_id,
        retry_after_header=retry_after_header,
        endpoint=endpoint,
    )
    assert error is not None  # an error report always maps to an error
    if in_stream and type(error) is _UNNAMED:
        return StreamError(error.message, status_code=status_code, body=body, endpoint=endpoint)
    return error


def _class_for(status_code: int, message: str) -> type[APIStatusError]:
    if status_code in _STATUS_CLASSES:
        return _STATUS_CLASSES[status_code]
    if status_code >= 400:
        return ServerError if status_code >= 500 else APIStatusError
    # An HTTP-200 envelope: the message is all we have to classify it.
    lowered = message.lower()
    return next((cls for cls, hints in _HINTS if any(h in lowered for h in hints)), _UNNAMED)


# How a server that does not take a ``json_schema`` response format says so: OpenAI and vLLM name
# the parameter (``response_format``, ``"param": "response_format"``) or the format's type.
_RESPONSE_FORMAT_HINTS = ("response_format", "response format", "json_schema", "json schema")


def names_response_format(error: BaseException) -> bool:
    """True when ``error`` is the server refusing the request's ``json_schema`` response format
    (a :class:`BadRequestError` whose message, code, type or ``param`` names it): the one error
    on which structured output asks again in JSON mode. Any other bad request is raised as it is.
    """
    if not isinstance(error, BadRequestError):
        return False
    texts = [error.message, error.code or "", error.error_type or ""]
    if isinstance(error.body, Mapping):
        detail = error.body.get("error")
        if isinstance(detail, Mapping):
            texts.append(str(detail.get("param") or ""))
    lowered = " ".join(texts).lower()
    return any(hint in lowered for hint in _RESPONSE_FORMAT_HINTS)


_TITLE = re.compile(r"<title>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def error_from_response(
    status_code: int,
    content: bytes,
    *,
    request_id: str | None = None,
    retry_after_header: float | None = None,
    secret: str | None = None,
    endpoint: str | None = None,
) -> APIStatusError:
    """Map a non-2xx HTTP answer (any body: JSON, HTML, empty) to its error class. ``secret`` is
    masked in the text before any of it is cut into the message."""
    text = redact(content.decode("utf-8", errors="replace"), secret)
    body: Any
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):  # empty, HTML, text; nested deeper than json reads
        body = None
    fallback = None
    if body is None and text.strip():
        title = _TITLE.search(text)
        snippet = " ".join(title.group(1).split()) if title else ""
        fallback = f"HTTP {status_code}: {snippet or ' '.join(text.split())[:EXCERPT_LIMIT]}"
    error = error_from_body(
        status_code,
        body if body is not None else text[:2000] or None,
        request_id=request_id,
        retry_after_header=retry_after_header,
        fallback_text=fallback,
        endpoint=endpoint,
    )
    assert error is not None  # status >= 400 always maps to an error
    return error
