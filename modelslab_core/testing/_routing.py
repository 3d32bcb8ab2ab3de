"""Routes, keys and the request log of the local server (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["REDACTED", "ROUTES", "KeyPlacement", "RecordedRequest", "find_key", "redacted"]

KeyPlacement = Literal["bearer", "body", "x-api-key"]
REDACTED = "***"


#: The known endpoints: each one's method, its kind, and whether it is an uncensored one.
ROUTES: dict[str, tuple[str, Literal["chat", "completion", "models"], bool]] = {
    "/api/v7/llm/chat/completions": ("POST", "chat", False),
    "/api/uncensored-chat/v1/chat/completions": ("POST", "chat", True),
    "/api/v6/completions": ("POST", "completion", False),
    "/api/uncensored-chat/v1/completions": ("POST", "completion", True),
    "/api/v7/llm/v1/models": ("GET", "models", False),
    "/api/v7/llm/models": ("GET", "models", False),
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
    method: str, target: str, headers: dict[str, str], body: Any, placement: KeyPlacement | None
) -> RecordedRequest:
    """The log entry of a request to ``target`` (its path and query), every key replaced by
    ``"***"``."""
    path, _, query = target.partition("?")
    hidden = {name: REDACTED for name in ("authorization", "x-api-key") if name in headers}
    if isinstance(body, dict) and "key" in body:
        body = {**body, "key": REDACTED}
    body = body if isinstance(body, dict) else None
    return RecordedRequest(method, path, headers | hidden, body, placement, query)
