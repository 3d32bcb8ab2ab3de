"""Settings for talking to ModelsLab: key, base URLs, timeout, retries, key placement."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Annotated, Any, Literal, Self

import httpx
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .errors import ConfigurationError, MissingAPIKeyError, ModelsLabError, ParameterError

__all__ = [
    "ALIASES",
    "API_KEY_ENV",
    "BASE_URLS",
    "BASE_URL_ENV",
    "CHAT_BASE_URL",
    "COMPLETIONS_BASE_URL",
    "COMPLETIONS_BASE_URL_ENV",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_RATE_LIMIT_BUDGET",
    "DEFAULT_TIMEOUT",
    "ENDPOINT_PATHS",
    "REDIS_URL_ENV",
    "UNCENSORED_BASE_URL",
    "ClientConfig",
    "ClientSettings",
    "InvalidSettingError",
    "KeyPlacement",
    "as_setting_errors",
    "check_extra_fields",
    "check_header_value",
    "merge_aliases",
    "repr_args",
    "resolve_api_key",
    "resolve_base_url",
    "resolve_redis_url",
    "settings_error",
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
    when it is no string, or when it holds a character that cannot go in an HTTP header."""
    if isinstance(api_key, SecretStr):
        api_key = api_key.get_secret_value()
    if api_key is not None and not isinstance(api_key, str):
        raise ConfigurationError(f"api_key must be a string, got {type(api_key).__name__}")
    if not api_key:
        api_key = os.environ.get(API_KEY_ENV, "")
    api_key = api_key.strip()
    if not api_key:
        raise MissingAPIKeyError(
            f"No ModelsLab API key: pass api_key=... or set the {API_KEY_ENV} environment variable."
        )
    check_header_value(api_key, "The API key")
    return SecretStr(api_key)


#: Endpoint paths a pasted base URL may end in (ModelsLab's documentation gives whole endpoint
#: URLs, e.g. https://modelslab.com/api/v7/llm/chat/completions): cut off, with a warning.
ENDPOINT_PATHS = ("/chat/completions", "/completions", "/v1/models", "/models")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_USERINFO = re.compile(r"//[^/?#]*@")


def _shown(url: str) -> str:
    """``url`` fit for an error message: a ``user:password@`` part masked."""
    return _USERINFO.sub("//***@", url)


def resolve_base_url(
    base_url: str | None, default: str = CHAT_BASE_URL, *, env: str = BASE_URL_ENV
) -> str:
    """``base_url`` (a URL or a name from :data:`BASE_URLS`), else the environment variable
    ``env`` (``MODELSLAB_BASE_URL``), else ``default``; in one spelling (lower-case scheme and
    host, no default port, no trailing slash), so equal addresses give equal configs.

    A base URL that ends in an endpoint path (``.../chat/completions``) is cut back to its base,
    with a warning saying so; one with a user name or password is refused (httpx's Basic auth
    would replace the key, and the password would show in logs) without echoing it."""
    url = base_url or os.environ.get(env) or default
    if not isinstance(url, str):
        raise ConfigurationError(f"base_url must be a string, got {type(url).__name__}")
    url = BASE_URLS.get(url.strip(), url.strip())
    if not url.lower().startswith(("http://", "https://")):
        raise ConfigurationError(
            f"base_url must be an http(s) URL or one of {sorted(BASE_URLS)}, got {_shown(url)!r}"
        )
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise ConfigurationError(f"base_url is not a valid URL: {_shown(str(exc))}") from None
    if parsed.userinfo or _USERINFO.search(url):
        raise ConfigurationError(
            "base_url must not hold a user name or password (user:password@host): httpx would "
            "send them as Basic auth instead of the API key; pass the key as api_key. "
            f"Host: {parsed.host!r}"
        )
    if "?" in url or "#" in url:
        # ``{base_url}/chat/completions`` would land inside the query or the fragment.
        raise ConfigurationError(
            f"base_url must not have a query string or a fragment, got {_shown(url)!r}: "
            "pass extra headers with default_headers and extra body fields with model_kwargs"
        )
    if parsed.port == _DEFAULT_PORTS.get(parsed.scheme):
        parsed = parsed.copy_with(port=None)
    normal = str(parsed).rstrip("/")
    for endpoint in ENDPOINT_PATHS:
        if normal.lower().endswith(endpoint):
            base = normal[: -len(endpoint)]
            warnings.warn(
                f"base_url {normal!r} ends in the endpoint path {endpoint!r}; using {base!r} "
                f"(the client adds {endpoint!r} itself)",
                stacklevel=2,
            )
            return base
    return normal


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


#: Seconds: a finite number > 0 (never a bool, which pydantic's lax mode would take for 1).
Seconds = Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)]


class InvalidSettingError(ConfigurationError, ParameterError):
    """A constructor argument that is wrong (out of range, of the wrong type, contradicting
    another): a :class:`ConfigurationError` and a :class:`ParameterError` at once (both
    ``ValueError``), whichever of them the caller catches. ``field`` names the argument."""


def settings_error(exc: ValidationError) -> ModelsLabError:
    """Pydantic's error about a model's arguments → ours: our own error raised inside a
    validator comes out as it is (a ParameterError as an :class:`InvalidSettingError`); anything
    else pydantic refused, as an :class:`InvalidSettingError` with its message (never the
    input, which may be the key)."""
    for error in exc.errors():
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, ParameterError) and not isinstance(cause, ConfigurationError):
            return InvalidSettingError(str(cause), field=cause.field)
        if isinstance(cause, ModelsLabError):
            return cause
    loc = exc.errors()[0]["loc"]
    where = ".".join(str(part) for part in loc) or "arguments"
    more = f" ({exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return InvalidSettingError(
        f"{exc.title}: {where}: {exc.errors()[0]['msg']}{more}",
        field=str(loc[0]) if loc else None,
    )


class ClientSettings(BaseModel):
    """Every client setting, declared once: its type, default, documentation and check.

    :class:`ClientConfig` and the frameworks' models (LangChain's ``ChatModelsLab`` and
    ``ModelsLabLLM``, LlamaIndex's ``ModelsLabLLM``) inherit these fields, so a new setting is
    one field here. A wrong value raises a :class:`ConfigurationError` naming the setting;
    ``None`` means the default.
    """

    model_config = ConfigDict(defer_build=True, hide_input_in_errors=True)

    timeout: Seconds = Field(
        default=DEFAULT_TIMEOUT,
        validation_alias=AliasChoices("timeout", "request_timeout"),
        description="Seconds allowed for each network step (connect, each read, each write, a "
        "place in the pool; alias request_timeout): a server that keeps sending is never cut "
        "off by it. total_timeout bounds a whole call.",
    )
    max_retries: StrictInt = Field(
        default=DEFAULT_MAX_RETRIES,
        ge=0,
        description="Retries after rate limits, server errors, timeouts and dropped "
        "connections; 0: no retry of any kind, 429 included.",
    )
    default_headers: dict[StrictStr, StrictStr] = Field(
        default_factory=dict,
        repr=False,  # a header may hold a credential of its own
        description="Extra HTTP headers sent with every request.",
    )
    key_placement: KeyPlacement = Field(
        default="bearer",
        description="Where the key goes: 'bearer' (Authorization header, the documented "
        "default), 'body' (a key field in the JSON body, ModelsLab's legacy style) or "
        "'x-api-key' (a header, as ModelsLab's OpenAPI spec has it).",
    )
    key_in_body: StrictBool = Field(
        default=False,
        description="Send the key as a key field in the JSON body (key_placement='body').",
    )
    max_in_flight: StrictInt | None = Field(
        default=None,
        ge=1,
        description="Requests open at once per account, shared by every client of the process "
        "(None: learned from the account's 429s). Needs flow_control.",
    )
    flow_control: StrictBool = Field(
        default=True, description="False turns the account gate off: every call goes out at once."
    )
    total_timeout: Seconds | None = Field(
        default=None,
        description="Seconds a whole call may take, retries, waits and the whole stream "
        "included (None: no bound beyond timeout per step).",
    )
    rate_limit_budget: Seconds = Field(
        default=DEFAULT_RATE_LIMIT_BUDGET,
        description="Seconds a call may spend waiting out the account's rate limit (HTTP 429) "
        "before it raises RateLimitError.",
    )
    redis_url: StrictStr | None = Field(
        default=None,
        repr=False,  # the URL may hold a password
        exclude=True,
        description="A Redis URL (redis://, rediss://, unix://) through which every process "
        "using the key shares one account gate (None: MODELSLAB_REDIS_URL, else this process's "
        "gate). Needs the [redis] extra; never in a repr or a dump.",
    )

    # Every model with these fields raises our errors (see settings_error), never pydantic's.
    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise settings_error(exc) from None

    @field_validator(
        "timeout",
        "max_retries",
        "rate_limit_budget",
        "key_placement",
        "default_headers",
        mode="before",
    )
    @classmethod
    def _none_is_default(cls, value: Any, info: ValidationInfo) -> Any:
        field = ClientSettings.model_fields[str(info.field_name)]
        return field.get_default(call_default_factory=True) if value is None else value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        return None if value is None else resolve_redis_url(value)

    @field_validator("default_headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            check_header_value(name, f"The default header name {name!r}")
            check_header_value(text, f"The value of default header {name!r}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _refuse_contradictions(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        if data.get("key_in_body") is True:
            placement = data.get("key_placement")
            if placement not in (None, "body"):
                raise ConfigurationError(
                    f"key_in_body=True puts the key in the body, but key_placement={placement!r} "
                    "says otherwise: pass one of them"
                )
            data = {**data, "key_placement": "body"}
        elif data.get("key_placement") == "body":
            data = {**data, "key_in_body": True}  # one spelling: equal settings, equal configs
        if data.get("max_in_flight") is not None and data.get("flow_control") is False:
            raise ConfigurationError(
                "max_in_flight cannot take effect with flow_control=False (the account gate it "
                "sets is off): pass one of them"
            )
        return data

    @model_validator(mode="after")
    def _refuse_settings_without_effect(self) -> Self:
        # Judged on values, not on which arguments were given: a pickled model or a config
        # built from a model's fields passes every value again.
        budget_given = self.rate_limit_budget != DEFAULT_RATE_LIMIT_BUDGET
        if budget_given and self.max_retries == 0:
            raise ConfigurationError(
                f"rate_limit_budget={self.rate_limit_budget:g} cannot take effect with "
                "max_retries=0 (no retry of any kind, 429 included): pass one of them"
            )
        if budget_given and not self.flow_control:
            raise ConfigurationError(
                f"rate_limit_budget={self.rate_limit_budget:g} cannot take effect with "
                "flow_control=False (the budget is the account gate's wait for 429s; without "
                "the gate a 429 spends a retry): pass one of them"
            )
        total = self.total_timeout
        if budget_given and total is not None and self.rate_limit_budget > total:
            raise ConfigurationError(
                f"rate_limit_budget={self.rate_limit_budget:g} can never be spent within "
                f"total_timeout={total:g}: pass a budget no longer than the whole call"
            )
        placement = "body" if self.key_in_body else self.key_placement
        overwritten = {"bearer": "authorization", "x-api-key": "x-api-key"}.get(placement)
        if overwritten in {name.lower() for name in self.default_headers}:
            raise ConfigurationError(
                f"default_headers sets {overwritten!r}, where key_placement={placement!r} puts "
                "the API key: the header would be replaced; pass the key as api_key, or "
                "choose another key_placement"
            )
        return self

    def client_settings(self) -> dict[str, Any]:
        """These settings' current values, as :meth:`ClientConfig.build` takes them."""
        values = {name: getattr(self, name) for name in ClientSettings.model_fields}
        if values["key_in_body"]:
            values["key_placement"] = "body"
        return values


class ClientConfig(ClientSettings):
    """Everything a client needs, resolved and checked: the one settings object.

    Build it with :meth:`build` (which resolves the key and the base URL from the environment
    and checks every value); the frameworks build one per model (again only when a field
    changed) and hand it to the clients, which are cached by it. Equal configs mean
    interchangeable clients. The key is a ``SecretStr`` and never appears in the repr.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")  # a misspelt setting is an error

    api_key: SecretStr
    base_url: str = CHAT_BASE_URL

    @classmethod
    def build(
        cls,
        api_key: str | SecretStr | None = None,
        base_url: str | None = None,
        *,
        default_base_url: str = CHAT_BASE_URL,
        base_url_env: str = BASE_URL_ENV,
        **settings: Any,
    ) -> ClientConfig:
        """Resolve the key and base URL (arguments, then environment, then defaults) and check
        every setting (``settings``: fields of :class:`ClientSettings`); a
        :class:`ConfigurationError` (or :class:`MissingAPIKeyError`) before any request when
        something is off."""
        if settings.get("redis_url") is None:  # a given one is checked as the field
            settings["redis_url"] = resolve_redis_url(None)
        return cls(
            api_key=resolve_api_key(api_key),
            base_url=resolve_base_url(base_url, default_base_url, env=base_url_env),
            **settings,
        )


#: Other names the frameworks' constructors take for a field (ChatOpenAI's and LlamaIndex
#: OpenAI's spellings, and ModelsLab's own ``model_id``).
ALIASES: Mapping[str, tuple[str, ...]] = {
    "model": ("model_id", "model_name"),
    "base_url": ("api_base", "openai_api_base"),
    "timeout": ("request_timeout",),
    "stop": ("stop_sequences",),
}


def merge_aliases(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with every alias of :data:`ALIASES` under its field's own name; two names of
    one field given different values are a :class:`ConfigurationError` (never one of them kept
    silently)."""
    merged = dict(values)
    for name, aliases in ALIASES.items():
        given = {n: merged.pop(n) for n in (name, *aliases) if merged.get(n) is not None}
        if len({repr(v) for v in given.values()}) > 1:
            raise InvalidSettingError(
                f"{' and '.join(f'{n}={v!r}' for n, v in given.items())} contradict each other: "
                f"they are names of one setting, {name}; pass one",
                field=name,
            )
        if given:
            merged[name] = next(iter(given.values()))
    return merged


@contextmanager
def as_setting_errors() -> Iterator[None]:
    """A :class:`ParameterError` raised while a model is constructed is a wrong setting: raised
    as an :class:`InvalidSettingError` (still a ParameterError)."""
    try:
        yield
    except ParameterError as exc:
        if isinstance(exc, ConfigurationError):
            raise
        raise InvalidSettingError(str(exc), field=exc.field) from None


def repr_args(model: BaseModel, hidden: frozenset[str]) -> Iterator[tuple[str, Any]]:
    """A framework model's repr, short and useful: the model id first, always, then the fields
    that differ from their defaults; never one of ``hidden`` (the key, clients, callbacks)."""
    yield "model", getattr(model, "model", None)
    for name, info in type(model).model_fields.items():
        if name in hidden or name == "model" or info.repr is False:
            continue
        value = getattr(model, name, None)
        if value != info.get_default(call_default_factory=True):
            yield name, value


def check_extra_fields(extra: Mapping[str, Any] | None, fields: Iterable[str], where: str) -> None:
    """Refuse a request field in ``extra`` (``model_kwargs``, ``extra_body``,
    ``additional_kwargs``) that the model has a field of its own for: the two would contradict
    each other, and one would be dropped without a word (ChatOpenAI refuses them too)."""
    clash = sorted(set(extra or ()) & set(fields))
    if clash:
        raise InvalidSettingError(
            f"{where} holds {clash}, which the model takes as arguments of their own: pass "
            f"{', '.join(f'{name}=...' for name in clash)} instead",
            field=where,
        )
