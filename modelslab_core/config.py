"""Settings for talking to ModelsLab: key, base URLs, timeout, retries, key placement."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import SecretStr

from .errors import ConfigurationError, MissingAPIKeyError

__all__ = [
    "API_KEY_ENV",
    "BASE_URLS",
    "BASE_URL_ENV",
    "CHAT_BASE_URL",
    "COMPLETIONS_BASE_URL",
    "COMPLETIONS_BASE_URL_ENV",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_RATE_LIMIT_BUDGET",
    "DEFAULT_TIMEOUT",
    "REDIS_URL_ENV",
    "UNCENSORED_BASE_URL",
    "ClientConfig",
    "KeyPlacement",
    "check_header_value",
    "resolve_api_key",
    "resolve_base_url",
]

API_KEY_ENV = "MODELSLAB_API_KEY"
#: A Redis URL (``redis://``, ``rediss://``, with a password as redis-py takes it): every process
#: using the key shares one account gate through that Redis (the ``[redis]`` extra).
REDIS_URL_ENV = "MODELSLAB_REDIS_URL"
BASE_URL_ENV = "MODELSLAB_BASE_URL"
#: Overrides the text-completions base (the chat base has ``MODELSLAB_BASE_URL``).
COMPLETIONS_BASE_URL_ENV = "MODELSLAB_COMPLETIONS_BASE_URL"

#: Chat completions live at ``{CHAT_BASE_URL}/chat/completions`` (ModelsLab's API reference,
#: https://docs.modelslab.com, "Chat Completions").
CHAT_BASE_URL = "https://modelslab.com/api/v7/llm"
#: OpenAI-style text completions at ``{COMPLETIONS_BASE_URL}/completions`` (the same reference,
#: "OpenAI-compatible text completions").
COMPLETIONS_BASE_URL = "https://modelslab.com/api/v6"
#: The uncensored endpoints: ``/chat/completions`` and ``/completions``
#: (https://docs.modelslab.com/uncensored-chat-api/overview).
UNCENSORED_BASE_URL = "https://modelslab.com/api/uncensored-chat/v1"

#: Named base URLs. Third-party integrations drop the ``/api`` segment and call URLs that do not
#: exist; these are the full, documented ones.
BASE_URLS: Mapping[str, str] = {
    "chat": CHAT_BASE_URL,
    "completions": COMPLETIONS_BASE_URL,
    "uncensored": UNCENSORED_BASE_URL,
}

DEFAULT_TIMEOUT = 120.0
DEFAULT_MAX_RETRIES = 2
#: Seconds a call may wait out rate limits (HTTP 429) in all.
DEFAULT_RATE_LIMIT_BUDGET = 300.0

#: Where the key goes: ``Authorization: Bearer`` (documented default), a ``key`` field in the JSON
#: body (ModelsLab's documented legacy style, used by its official CLI and SDK), or an
#: ``x-api-key`` header (ModelsLab's OpenAPI spec).
KeyPlacement = Literal["bearer", "body", "x-api-key"]
_PLACEMENTS = ("bearer", "body", "x-api-key")


def check_header_value(value: str, what: str) -> None:
    """Refuse what cannot travel in an HTTP header as httpx sends it: control characters
    (``\\r\\n`` would fold or split the header) and characters outside printable ASCII (a pasted
    zero-width space; httpx encodes header text as ASCII). The error names the position and
    the character's code point, never the value itself."""
    for index, char in enumerate(value):
        code = ord(char)
        if code < 0x20 or code > 0x7E:
            raise ConfigurationError(
                f"{what} cannot be sent in an HTTP header: character {index + 1} is U+{code:04X}, "
                "a control character or one outside printable ASCII (a stray newline or an "
                "invisible character pasted with it?)"
            )


def resolve_api_key(api_key: str | SecretStr | None) -> SecretStr:
    """The key from the argument, else from ``MODELSLAB_API_KEY``; a clear error when neither,
    or when the key holds a character that cannot go in an HTTP header."""
    if isinstance(api_key, SecretStr):
        api_key = api_key.get_secret_value()
    if not api_key:
        api_key = os.environ.get(API_KEY_ENV, "")
    api_key = api_key.strip()
    if not api_key:
        raise MissingAPIKeyError(
            f"No ModelsLab API key: pass api_key=... or set the {API_KEY_ENV} environment variable."
        )
    check_header_value(api_key, "The API key")
    return SecretStr(api_key)


def resolve_base_url(
    base_url: str | None, default: str = CHAT_BASE_URL, *, env: str = BASE_URL_ENV
) -> str:
    """``base_url`` (a URL or a name from :data:`BASE_URLS`), else the environment variable
    ``env`` (``MODELSLAB_BASE_URL``), else ``default``; without a trailing slash."""
    url = base_url or os.environ.get(env) or default
    url = BASE_URLS.get(url, url)
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"base_url must be an http(s) URL or one of {sorted(BASE_URLS)}, got {url!r}"
        )
    if "?" in url or "#" in url:
        # ``{base_url}/chat/completions`` would land inside the query or the fragment.
        raise ConfigurationError(
            f"base_url must not have a query string or a fragment, got {url!r}: "
            "pass extra headers with default_headers and extra body fields with model_kwargs"
        )
    return url.rstrip("/")


def resolve_redis_url(redis_url: str | None) -> str | None:
    """``redis_url``, else ``MODELSLAB_REDIS_URL``, else None (no shared gate). The error for a
    URL that is no Redis URL names its scheme only: the URL may hold a password."""
    url = (redis_url or os.environ.get(REDIS_URL_ENV, "")).strip()
    if not url:
        return None
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in ("redis", "rediss", "unix"):
        raise ConfigurationError(
            f"redis_url must be a redis://, rediss:// or unix:// URL, got one with scheme "
            f"{scheme!r}"
        )
    return url


def _seconds(value: float | None, name: str, default: float | None) -> float | None:
    """A positive, finite number of seconds (``None`` keeps ``default``); bools are refused."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"{name} must be a number of seconds, got {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigurationError(f"{name} must be a finite number of seconds > 0, got {value!r}")
    return seconds


def _count(value: int | None, name: str, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be a whole number >= {minimum}, got {value!r}")
    return value


#: The settings a framework model holds as fields of these names (see ClientConfig.of_model).
MODEL_SETTINGS = (
    "timeout",
    "max_retries",
    "default_headers",
    "max_in_flight",
    "flow_control",
    "total_timeout",
    "rate_limit_budget",
    "redis_url",
)


@dataclass(frozen=True)
class ClientConfig:
    """Everything a client needs, resolved and checked: the one settings object.

    Build it with :meth:`build` (which resolves the key and the base URL from the environment
    and checks every value); the frameworks build one per model and hand it to the clients,
    which are cached by it. Equal configs mean interchangeable clients. The key is a
    ``SecretStr`` and never appears in the repr.
    """

    api_key: SecretStr
    base_url: str = CHAT_BASE_URL
    #: Seconds allowed for each network step (connect, each read, each write, a place in the
    #: pool): a server that keeps sending bytes is never cut off by it. ``total_timeout``
    #: bounds a whole call.
    timeout: float = DEFAULT_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    #: Left out of the repr: a header may hold a credential of its own.
    default_headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    key_placement: KeyPlacement = "bearer"
    #: ``None``: the account gate learns the account's queue limit; ``N``: pinned to N.
    max_in_flight: int | None = None
    #: False turns the account gate off: every call goes out at once.
    flow_control: bool = True
    #: Seconds a whole call may take, retries, waits and the whole stream included (None: no
    #: bound beyond ``timeout`` per step).
    total_timeout: float | None = None
    #: Seconds a call may spend waiting out the account's rate limit (HTTP 429) before it
    #: raises :class:`~modelslab_core.errors.RateLimitError`.
    rate_limit_budget: float = DEFAULT_RATE_LIMIT_BUDGET
    #: The Redis through which every process using the key shares one account gate (None: this
    #: process's gate). Left out of the repr: the URL may hold a password.
    redis_url: str | None = field(default=None, repr=False)

    @classmethod
    def build(
        cls,
        api_key: str | SecretStr | None = None,
        base_url: str | None = None,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        default_headers: Mapping[str, str] | None = None,
        key_placement: KeyPlacement = "bearer",
        max_in_flight: int | None = None,
        flow_control: bool = True,
        total_timeout: float | None = None,
        rate_limit_budget: float | None = None,
        redis_url: str | None = None,
        default_base_url: str = CHAT_BASE_URL,
        base_url_env: str = BASE_URL_ENV,
    ) -> ClientConfig:
        """Resolve the key and base URL (arguments, then environment, then defaults) and check
        every setting; a :class:`ConfigurationError` (or :class:`MissingAPIKeyError`) before any
        request when something is off."""
        if key_placement not in _PLACEMENTS:
            raise ConfigurationError(
                f"key_placement must be one of {_PLACEMENTS}, got {key_placement!r}"
            )
        headers = dict(default_headers or {})
        for name, value in headers.items():
            if not isinstance(name, str) or not isinstance(value, str):
                raise ConfigurationError(f"default_headers must map str to str, got {name!r}")
            check_header_value(name, f"The default header name {name!r}")
            check_header_value(value, f"The value of default header {name!r}")
        return cls(
            api_key=resolve_api_key(api_key),
            base_url=resolve_base_url(base_url, default_base_url, env=base_url_env),
            timeout=_seconds(timeout, "timeout", DEFAULT_TIMEOUT) or DEFAULT_TIMEOUT,
            max_retries=DEFAULT_MAX_RETRIES
            if max_retries is None
            else _count(max_retries, "max_retries", 0) or 0,
            default_headers=headers,
            key_placement=key_placement,
            max_in_flight=_count(max_in_flight, "max_in_flight", 1),
            flow_control=bool(flow_control),
            total_timeout=_seconds(total_timeout, "total_timeout", None),
            rate_limit_budget=_seconds(
                rate_limit_budget, "rate_limit_budget", DEFAULT_RATE_LIMIT_BUDGET
            )
            or DEFAULT_RATE_LIMIT_BUDGET,
            redis_url=resolve_redis_url(redis_url),
        )

    @classmethod
    def of_model(
        cls,
        model: object,
        api_key: str | SecretStr | None,
        base_url: str | None,
        *,
        default_base_url: str = CHAT_BASE_URL,
        base_url_env: str = BASE_URL_ENV,
    ) -> ClientConfig:
        """The config of a framework model, from its fields of the same names (``timeout``,
        ``max_retries``, ``default_headers``, ``max_in_flight``, ``flow_control``,
        ``total_timeout``, ``rate_limit_budget``, ``redis_url``) and ``key_in_body``."""
        return cls.build(
            api_key,
            base_url,
            key_placement="body" if getattr(model, "key_in_body", False) else "bearer",
            default_base_url=default_base_url,
            base_url_env=base_url_env,
            **{name: getattr(model, name) for name in MODEL_SETTINGS},
        )
