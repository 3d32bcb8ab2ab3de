"""Scripted replies and faults for the local server (immutable values, no I/O)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

__all__ = [
    "INVALID_KEY_BODY",
    "QUEUE_LIMIT_MESSAGE",
    "AnswerReply",
    "CutStreamReply",
    "KeepAliveReply",
    "Reply",
    "ReplyKind",
    "ResetReply",
    "ResponseReply",
    "SlowReply",
    "StreamErrorReply",
]

ReplyKind = Literal[
    "answer", "response", "cut_stream", "stream_error", "reset", "slow", "keep_alive"
]

#: The 429 message of the queue limit, as ModelsLab words it.
QUEUE_LIMIT_MESSAGE = "Rate limit exceeded. Maximum {limit} queued requests allowed."
#: The body ModelsLab sends (with HTTP 200) for a missing or wrong key.
INVALID_KEY_BODY = {
    "status": "error",
    "message": "Invalid Api Key",
    "tip": "Pass your API key as 'Authorization: Bearer <key>'. "
    "Get one at https://modelslab.com/dashboard/api-keys",
}
_HTML_TITLES = {
    502: "502 Bad Gateway",
    503: "503 Service Temporarily Unavailable",
    504: "504 Gateway Time-out",
}


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted answer or fault, queued with :meth:`LocalModelsLab.enqueue` (or drawn at
    random by :meth:`LocalModelsLab.set_fault_rate`) for the next chat or completion request in
    place of the demo model. Answers are streamed when the request streams; errors and raw bodies
    are sent as they are. Build it with the class methods: each returns a subclass, its ``kind``
    one of :data:`ReplyKind`."""

    kind: ClassVar[ReplyKind]

    @classmethod
    def text(
        cls,
        content: str,
        *,
        reasoning: str | None = None,
        finish_reason: str = "stop",
        usage: Mapping[str, int] | None = None,
    ) -> AnswerReply:
        """Answer with ``content`` (``choices[].text`` on a completions route)."""
        counts = tuple((str(k), int(v)) for k, v in usage.items()) if usage else None
        return AnswerReply(content, reasoning, finish_reason, counts)

    @classmethod
    def tool_call(
        cls, name: str, arguments: Mapping[str, Any] | str, *, id: str | None = None
    ) -> AnswerReply:
        """Answer with one call of tool ``name`` (arguments as a dict or a JSON string)."""
        return cls.tool_calls([(name, arguments)], ids=[id])

    @classmethod
    def tool_calls(
        cls,
        calls: Sequence[tuple[str, Mapping[str, Any] | str]],
        content: str | None = None,
        *,
        ids: Sequence[str | None] | None = None,
    ) -> AnswerReply:
        """Answer with several tool calls ``[(name, arguments), ...]`` and optional content."""
        call_ids = list(ids) if ids is not None else [None] * len(calls)
        if len(call_ids) != len(calls):
            raise ValueError("ids must have one entry per call")
        scripted = tuple(
            (name, args if isinstance(args, str) else json.dumps(dict(args), ensure_ascii=False), i)
            for (name, args), i in zip(calls, call_ids, strict=True)
        )
        return AnswerReply(content, finish_reason="tool_calls", calls=scripted)

    @classmethod
    def raw(
        cls,
        status: int,
        body: bytes | str,
        content_type: str = "text/plain",
        headers: Mapping[str, str] | None = None,
    ) -> ResponseReply:
        """Send ``body`` verbatim with HTTP ``status`` and ``content_type``."""
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise ValueError(f"HTTP status must be an integer from 100 to 599, got {status!r}")
        data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        pairs = tuple((str(k), str(v)) for k, v in (headers or {}).items())
        return ResponseReply(status, data, content_type, pairs)

    @classmethod
    def error(
        cls, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> ResponseReply:
        """Send the JSON ``body`` with HTTP ``status`` (and extra ``headers``)."""
        data = json.dumps(dict(body), ensure_ascii=False)
        return cls.raw(status, data, "application/json", headers)

    @classmethod
    def rate_limit(
        cls, retry_after: int = 1, header: bool = True, body_field: bool = True
    ) -> ResponseReply:
        """HTTP 429 with ModelsLab's message, a ``retry_after`` field and/or ``Retry-After``."""
        body: dict[str, Any] = {"status": "error", "message": QUEUE_LIMIT_MESSAGE.format(limit=5)}
        if body_field:
            body["retry_after"] = retry_after
        return cls.error(429, body, {"Retry-After": str(retry_after)} if header else None)

    @classmethod
    def insufficient_credits(cls) -> ResponseReply:
        """HTTP 402 with ModelsLab's "insufficient credits" message (never retried)."""
        message = "Insufficient credits. Please recharge your wallet or upgrade your plan to "
        return cls.error(402, {"status": "error", "message": message + "continue."})

    @classmethod
    def invalid_key_envelope(cls) -> ResponseReply:
        """HTTP 200 with ``{"status": "error", "message": "Invalid Api Key", "tip": ...}``."""
        return cls.error(200, INVALID_KEY_BODY)

    @classmethod
    def misspelled_error(cls, message: str = "Something went wrong") -> ResponseReply:
        """HTTP 200 with the legacy misspelled field: ``{"status": "error", "messege": ...}``."""
        return cls.error(200, {"status": "error", "messege": message})

    @classmethod
    def openai_error(
        cls,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        code: str | int | None = None,
    ) -> ResponseReply:
        """An OpenAI-style error: ``{"error": {"message", "type", "code"}}``."""
        return cls.error(status, {"error": {"message": message, "type": type, "code": code}})

    @classmethod
    def server_error(
        cls, status: int = 500, message: str = "Internal Server Error"
    ) -> ResponseReply:
        """A 5xx JSON error ``{"status": "error", "message": ...}``."""
        return cls.error(status, {"status": "error", "message": message})

    @classmethod
    def html_error(cls, status: int = 502) -> ResponseReply:
        """A proxy's (nginx's) HTML error page instead of JSON."""
        title = _HTML_TITLES.get(status, f"{status} Error")
        page = (
            f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
            f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
            "</body>\r\n</html>\r\n"
        )
        return cls.raw(status, page, content_type="text/html")

    @classmethod
    def non_json(
        cls,
        body: str = "<!DOCTYPE html><html><body>Service is warming up</body></html>",
        content_type: str = "text/html",
    ) -> ResponseReply:
        """HTTP 200 with a body that is not JSON."""
        return cls.raw(200, body, content_type=content_type)

    @classmethod
    def processing(cls, id: int = 123, eta: int = 10) -> ResponseReply:
        """HTTP 200 with ``{"status": "processing", "id", "eta", "fetch_result"}``."""
        fetch = f"https://modelslab.com/api/v6/llm/fetch/{id}"
        return cls.error(200, {"status": "processing", "id": id, "eta": eta, "fetch_result": fetch})

    @classmethod
    def validation_error(
        cls, message: str = "The messages field is required.", field: str = "messages"
    ) -> ResponseReply:
        """HTTP 422 Laravel-style: ``{"status": "error", "message", "errors": {field: [...]}}``."""
        return cls.error(422, {"status": "error", "message": message, "errors": {field: [message]}})

    @classmethod
    def cut_stream(cls, after_chunks: int = 2) -> CutStreamReply:
        """Send that many chunks of the default answer, then end cleanly without ``[DONE]``
        (a non-streaming request gets half its JSON body, then the connection closes)."""
        return CutStreamReply(max(int(after_chunks), 0))

    @classmethod
    def stream_error_event(
        cls,
        message: str = "Upstream provider error",
        *,
        style: Literal["openai", "modelslab"] = "openai",
        after_chunks: int = 0,
    ) -> StreamErrorReply:
        """An SSE stream (even for a non-streaming request) with an error event after
        ``after_chunks`` chunks of the default answer, then ``data: [DONE]``: the event is
        ``{"error": {"message": ...}}`` or (``style="modelslab"``) ``{"status": "error", ...}``.
        """
        event: dict[str, Any] = {"status": "error", "message": message}
        if style == "openai":
            event = {"error": {"message": message, "type": "server_error", "code": 502}}
        return StreamErrorReply(json.dumps(event, ensure_ascii=False), max(int(after_chunks), 0))

    @classmethod
    def reset_connection(cls, after_bytes: int = 0) -> ResetReply:
        """Abort the TCP connection (RST), after sending ``after_bytes`` of the response."""
        return ResetReply(max(int(after_bytes), 0))

    @classmethod
    def slow(cls, seconds: float, then: Reply | None = None) -> SlowReply:
        """Wait ``seconds``, then answer with ``then`` (or the demo model)."""
        if seconds < 0:
            raise ValueError("seconds must not be negative")
        return SlowReply(float(seconds), then)

    @classmethod
    def keep_alive(
        cls, seconds: float = float("inf"), interval: float = 0.5, then: Reply | None = None
    ) -> KeepAliveReply:
        """Answer HTTP 200 at once, then only keep-alive bytes every ``interval`` seconds for
        ``seconds`` (forever by default), then the answer ``then`` (or the demo model's).

        A stream gets ``: keep-alive`` comments; a non-streaming request gets spaces before its
        JSON body (as OpenRouter-style proxies do): bytes keep arriving, no answer does.
        """
        if seconds < 0 or interval <= 0:
            raise ValueError("seconds must not be negative and interval must be positive")
        if then is not None and not isinstance(then, AnswerReply):
            raise ValueError("then must be an answer (Reply.text, Reply.tool_call, ...)")
        return KeepAliveReply(float(seconds), float(interval), then)


@dataclass(frozen=True, slots=True)
class AnswerReply(Reply):
    """An answer; ``calls`` holds ``(name, arguments JSON, id or None)``."""

    kind: ClassVar[ReplyKind] = "answer"
    content: str | None = None
    reasoning: str | None = None
    finish_reason: str = "stop"
    usage: tuple[tuple[str, int], ...] | None = None
    calls: tuple[tuple[str, str, str | None], ...] = ()


@dataclass(frozen=True, slots=True)
class ResponseReply(Reply):
    kind: ClassVar[ReplyKind] = "response"
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class CutStreamReply(Reply):
    kind: ClassVar[ReplyKind] = "cut_stream"
    after_chunks: int


@dataclass(frozen=True, slots=True)
class StreamErrorReply(Reply):
    """An SSE stream with the error ``event`` (JSON) after ``after_chunks`` chunks."""

    kind: ClassVar[ReplyKind] = "stream_error"
    event: str
    after_chunks: int


@dataclass(frozen=True, slots=True)
class ResetReply(Reply):
    kind: ClassVar[ReplyKind] = "reset"
    after_bytes: int


@dataclass(frozen=True, slots=True)
class SlowReply(Reply):
    kind: ClassVar[ReplyKind] = "slow"
    seconds: float
    then: Reply | None = None


@dataclass(frozen=True, slots=True)
class KeepAliveReply(Reply):
    kind: ClassVar[ReplyKind] = "keep_alive"
    seconds: float
    interval: float
    then: AnswerReply | None = None
