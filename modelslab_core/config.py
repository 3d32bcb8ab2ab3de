"""Settings for talking to ModelsLab: key, base URLs, timeout, retries, key placement."""

from __future__ import annotations

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
    "DEFAULT_TIMEOUT",
    "UNCENSORED_BASE_URL",
    "ClientConfig",
    "KeyPlacement",
    "resolve_api_key",
    "resolve_base_url",
]

API_KEY_ENV = "MODELSLAB_API_KEY"
BASE_URL_ENV = "MODELSLAB_BASE_URL"
#: Overrides the text-completions base (the chat base has ``MODELSLAB_BASE_URL``).
COMPLETIONS_BASE_URL_ENV = "MODELSLAB_COMPLETIONS_BASE_URL"

#: Chat completions live at ``{CHAT_BASE_URL}/chat/completions`` (seeds 000, 002).
CHAT_BASE_URL = "https://modelslab.com/api/v7/llm"
#: OpenAI-style text completions at ``{COMPLETIONS_BASE_URL}/completions`` (seed 004).
COMPLETIONS_BASE_URL = "https://modelslab.com/api/v6"
#: The uncensored endpoints: ``/chat/completions`` and ``/completions`` (seed 004).
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

#: Where the key goes: ``Authorization: Bearer`` (documented default), a ``key`` field in the JSON
#: body (seed 000, the official CLI and SDK), or an ``x-api-key`` header (the OpenAPI spec).
KeyPlacement = Literal["bearer", "body", "x-api-key"]
_PLACEMENTS = ("bearer", "body", "x-api-key")


def resolve_api_key(api_key: str | SecretStr | None) -> SecretStr:
    """The key from the argument, else from ``MODELSLAB_API_KEY``; a clear error when neither."""
    if isinstance(api_key, SecretStr):
        api_key = api_key.get_secret_value()
    if not api_key:
        api_key = os.environ.get(API_KEY_ENV, "")
    api_key = api_key.strip()
    if not api_key:
        raise MissingAPIKeyError(
            f"No ModelsLab API key: pass api_key=... or set the {API_KEY_ENV} environment variable."
        )
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
    return url.rstrip("/")


@dataclass(frozen=True, repr=False)
class ClientConfig:
    """Everything a client needs, resolved and checked. The key is a ``SecretStr``."""

    api_key: SecretStr
    base_url: str = CHAT_BASE_URL
    timeout: float = DEFAULT_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    default_headers: Mapping[str, str] = field(default_factory=dict)
    key_placement: KeyPlacement = "bearer"
    max_in_flight: int | None = None

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
        default_base_url: str = CHAT_BASE_URL,
        base_url_env: str = BASE_URL_ENV,
    ) -> ClientConfig:
        timeout = DEFAULT_TIMEOUT if timeout is None else float(timeout)
        max_retries = DEFAULT_MAX_RETRIES if max_retries is None else max_retries
        if timeout <= 0:
            raise ConfigurationError(f"timeout must be > 0 seconds, got {timeout}")
        if max_retries < 0:
            raise ConfigurationError(f"max_retries must be >= 0, got {max_retries}")
        if key_placement not in _PLACEMENTS:
            raise ConfigurationError(
                f"key_placement must be one of {_PLACEMENTS}, got {key_placement!r}"
            )
        if max_in_flight is not None and max_in_flight < 1:
            raise ConfigurationError(f"max_in_flight must be >= 1 or None, got {max_in_flight}")
        return cls(
            api_key=resolve_api_key(api_key),
            base_url=resolve_base_url(base_url, default_base_url, env=base_url_env),
            timeout=timeout,
            max_retries=max_retries,
            default_headers=dict(default_headers or {}),
            key_placement=key_placement,
            max_in_flight=max_in_flight,
        )

    def __repr__(self) -> str:
        return (
            f"ClientConfig(api_key=SecretStr('**********'), base_url={self.base_url!r}, "
            f"timeout={self.timeout}, max_retries={self.max_retries}, "
            f"key_placement={self.key_placement!r}, max_in_flight={self.max_in_flight})"
        )
