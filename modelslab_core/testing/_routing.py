"""Routes, keys and the request log of the local server (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["REDACTED", "ROUTES", "KeyPlacement", "RecordedRequest", "Route", "find_key", "redacted"]

KeyPlacement = Literal["bearer", "body", "x-api-key"]
REDACTED = "***"


@dataclass(frozen=True, slots=True)
class Route:
    """A known endpoint: its method, its kind, and whether it is the uncensored one."""

    method: str
    kind: Literal["chat", "completion", "models"]
    uncensored: bool = False


ROUTES: dict[str, Route] = {
    "/api/v7/llm/chat/completions": Route("POST", "chat"),
    "/api/uncensored-chat/v1/chat/completions": Route("POST", "chat", uncensored=True),
    "/api/v6/completions": Route("POST", "completion"),
    "/api/uncensored-chat/v1/completions": Route("POST", "completion", uncensored=True),
    "/api/v7/llm/v1/models": Route("GET", "models"),
    "/api/v7/llm/models": Route("GET", "models"),
}


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """A request the server received, with every API key replaced by ``"***"``.

    ``headers`` has lower-case names; ``body`` is the parsed JSON object (``None`` when the
    body was empty or not a JSON object); ``key_placement`` says where the key was found.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    key_placement: KeyPlacement | None
    query: str = ""


def find_key(headers: dict[str, str], body: Any) -> tuple[str | None, KeyPlacement | None]:
    """Find the API key: ``Authorization: Bearer``, then ``x-api-key``, then a body ``key``."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip(), "bearer"
    header_key = headers.get("x-api-key", "").strip()
    if header_key:
        return header_key, "x-api-key"
    if isinstance(body, dict):
        body_key = body.get("key")
        if isinstance(body_key, str) and body_key.strip():
            return body_key.strip(), "body"
    return None, None


def redacted(
    method: str,
    path: str,
    headers: dict[str, str],
    body: Any,
    placement: KeyPlacement | None,
    query: str,
) -> RecordedRequest:
    """Build the log entry of a request with every key replaced by ``"***"``."""
    headers = dict(headers)
    for name in ("authorization", "x-api-key"):
        if name in headers:
            headers[name] = REDACTED
    recorded_body: dict[str, Any] | None = None
    if isinstance(body, dict):
        recorded_body = {**body, "key": REDACTED} if "key" in body else body
    return RecordedRequest(method, path, headers, recorded_body, placement, query)
