"""The key never shows: every path, DEBUG logging on, callbacks and instrumentation attached.

A recognisable key is used through LangChain (chat model and LLM), LlamaIndex and the adapter,
sync, async and streaming, from the constructor and from ``MODELSLAB_API_KEY``, in the header and
in the body. It must appear in no log record, no callback or instrumentation payload, no
exception (text, repr, args, attributes, chained causes), no serialized object (``dumpd``,
``dumps``, ``model_dump``, ``to_dict``, ``to_json``, ``repr``; pickling carries the key by design
and is left aside), and no entry of the server's request log except the field that carried it
(the server masks exactly that field, so the key must be found nowhere else in the entry).
Errors include answers that echo the key back (an error message, an HTML page, a stream error
event): the client must scrub them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import traceback
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.load import dumpd, dumps
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.callbacks import CallbackManager
from llama_index.core.callbacks.base_handler import BaseCallbackHandler as LIBaseHandler
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.instrumentation import get_dispatcher  # type: ignore[attr-defined]
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.span_handlers import SimpleSpanHandler
from llama_index.core.llms import ChatMessage
from llama_index.core.prompts import PromptTemplate
from pydantic import BaseModel

from langchain_modelslab import ChatModelsLab
from langchain_modelslab import ModelsLabLLM as LangChainLLM
from llama_index_modelslab import ModelsLabLLM
from modelslab_core import (
    AsyncModelsLabClient,
    AsyncModelsLabCompletionsClient,
    ModelsLabClient,
    ModelsLabCompletionsClient,
)
from modelslab_core import errors as e
from modelslab_core.testing import LocalModelsLab, Reply

KEY = "msl-REL-7f3c9e1d-SECRET-KEY-0042"  # the conftest's server accepts this key only
T = TypeVar("T")


def arun(coro: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        return runner.run(coro)


# ----------------------------------------------------------------------------- the witness


def text_of(obj: Any) -> str:
    """Every way a user or a tool would print ``obj``."""
    parts = [repr(obj)]
    try:
        parts.append(str(obj))
    except Exception as exc:  # a str() that fails is no leak
        parts.append(type(exc).__name__)
    with contextlib.suppress(TypeError, ValueError):
        parts.append(json.dumps(obj, default=repr))
    if isinstance(obj, BaseException):
        seen: set[int] = set()
        error: BaseException | None = obj
        while error is not None and id(error) not in seen:
            seen.add(id(error))
            parts += [repr(error), str(error), repr(error.args), repr(vars(error))]
            parts.append("".join(traceback.format_exception(error)))
            error = error.__cause__ or error.__context__
    return "\n".join(parts)


class Witness(logging.Handler):
    """Collects what the key could leak into: log records and framework payloads."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[str] = []
        self.payloads: list[str] = []
        self.formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(self.format(record) + repr(record.args) + repr(record.__dict__))

    def saw(self, what: str, *payload: Any) -> None:
        self.payloads.append(what + ": " + text_of(payload))

    def instrumentation(self) -> list[str]:
        """LlamaIndex's instrumentation events and spans so far."""
        return [
            *(f"llama_index event: {text_of(item)}" for item in EVENTS),
            *(f"llama_index span: {text_of(item)}" for item in SPANS),
        ]

    def seen(self) -> list[str]:
        return [*self.records, *self.payloads, *self.instrumentation()]

    def check(self, *objects: Any) -> None:
        for text in [*self.seen(), *(text_of(o) for o in objects)]:
            assert KEY not in text, text[:2000]


class LangChainRecorder(BaseCallbackHandler):
    """Records every LangChain callback and its arguments."""

    def __init__(self, witness: Witness) -> None:
        self.witness = witness
        self.events: list[str] = []


def _recording(name: str) -> Callable[..., None]:
    def record(self: LangChainRecorder, *args: Any, **kwargs: Any) -> None:
        self.events.append(name)
        self.witness.saw(f"langchain {name}", args, kwargs)

    return record


for _name in dir(BaseCallbackHandler):
    if _name.startswith("on_"):
        setattr(LangChainRecorder, _name, _recording(_name))


class LlamaIndexRecorder(LIBaseHandler):
    """Records LlamaIndex's callback events and their payloads."""

    def __init__(self, witness: Witness) -> None:
        super().__init__([], [])
        self.witness = witness

    def on_event_start(
        self,
        event_type: Any,
        payload: dict[str, Any] | None = None,
        event_id: str = "",
        parent_id: str = "",
        **kwargs: Any,
    ) -> str:
        self.witness.saw(f"llama_index start {event_type}", payload, kwargs)
        return event_id

    def on_event_end(
        self, event_type: Any, payload: dict[str, Any] | None = None, event_id: str = "", **kw: Any
    ) -> None:
        self.witness.saw(f"llama_index end {event_type}", payload, kw)

    def start_trace(self, trace_id: str | None = None) -> None:
        pass

    def end_trace(self, trace_id: str | None = None, trace_map: Any = None) -> None:
        pass


# What LlamaIndex's instrumentation handed to the recorders below (pydantic models: no state).
EVENTS: list[Any] = []
SPANS: list[Any] = []


class EventRecorder(BaseEventHandler):
    """Records LlamaIndex instrumentation events (which carry the model's ``to_dict``)."""

    def handle(self, event: Any, **kwargs: Any) -> None:
        EVENTS.append((event.class_name(), event.model_dump(), event))


class SpanRecorder(SimpleSpanHandler):
    """Records the arguments and instance of every LlamaIndex span (the model itself)."""

    def new_span(  # type: ignore[override]
        self, id_: str, bound_args: Any, instance: Any = None, **kwargs: Any
    ) -> Any:
        SPANS.append((id_, bound_args.arguments, instance, kwargs))
        return super().new_span(id_, bound_args, instance, **kwargs)


@pytest.fixture
def witness() -> Iterator[Witness]:
    witness = Witness()
    root = logging.getLogger()
    names = ["", "modelslab_core", "httpx", "httpcore", "aiohttp", "asyncio", "urllib3"]
    names += ["langchain", "langchain_core", "llama_index", "llama_index.core", "openai"]
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.DEBUG)
    root.addHandler(witness)
    dispatcher = get_dispatcher()
    events, spans = EventRecorder(), SpanRecorder()
    EVENTS.clear()
    SPANS.clear()
    dispatcher.add_event_handler(events)
    dispatcher.add_span_handler(spans)
    try:
        yield witness
    finally:
        root.removeHandler(witness)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        dispatcher.event_handlers.remove(events)
        dispatcher.span_handlers.remove(spans)


# ----------------------------------------------------------------------------- the models


class City(BaseModel):
    """A city and its population."""

    name: str
    population: int


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


class Models:
    """Builds every model on the server with the key from the constructor or the environment,
    in the header or the body, with recorders attached."""

    def __init__(
        self,
        server: LocalModelsLab,
        witness: Witness,
        monkeypatch: pytest.MonkeyPatch,
        source: str,
        in_body: bool,
    ) -> None:
        self.server = server
        self.witness = witness
        self.in_body = in_body
        self.lc_recorder = LangChainRecorder(witness)
        self.li_callbacks = CallbackManager([LlamaIndexRecorder(witness)])
        if source == "env":
            monkeypatch.setenv("MODELSLAB_API_KEY", KEY)
            self.key: dict[str, Any] = {}
        else:
            self.key = {"api_key": KEY}

    def chat(self, **kw: Any) -> ChatModelsLab:
        return ChatModelsLab(
            base_url=self.server.base_url,
            key_in_body=self.in_body,
            callbacks=[self.lc_recorder],
            max_retries=0,
            **self.key,
            **kw,
        )

    def lc_llm(self, **kw: Any) -> LangChainLLM:
        return LangChainLLM(
            base_url=self.server.completions_base_url,
            key_in_body=self.in_body,
            callbacks=[self.lc_recorder],
            max_retries=0,
            **self.key,
            **kw,
        )

    def li(self, **kw: Any) -> ModelsLabLLM:
        return ModelsLabLLM(
            base_url=self.server.base_url,
            key_in_body=self.in_body,
            callback_manager=self.li_callbacks,
            max_retries=0,
            **self.key,
            **kw,
        )

    def li_text(self) -> ModelsLabLLM:
        return ModelsLabLLM(
            model="ModelsLab/Llama-3.1-8b-Uncensored-Dare",
            base_url=self.server.completions_base_url,
            is_chat_model=False,
            key_in_body=self.in_body,
            callback_manager=self.li_callbacks,
            max_retries=0,
            **self.key,
        )

    def core(self, cls: type[Any]) -> Any:
        completions = "Completions" in cls.__name__
        return cls(
            base_url=self.server.completions_base_url if completions else self.server.base_url,
            key_placement="body" if self.in_body else "bearer",
            max_retries=0,
            **self.key,
        )


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=text)]


async def adrain(gen: Any) -> list[Any]:
    return [item async for item in gen]


async def _events(chat: ChatModelsLab) -> list[Any]:
    return [event async for event in chat.astream_events("events", version="v2")]


def _query(llm: ModelsLabLLM, streaming: bool) -> Any:
    index = VectorStoreIndex.from_documents(
        [Document(text="The Zorblat bridge is teal.")], embed_model=MockEmbedding(embed_dim=8)
    )
    response: Any = index.as_query_engine(llm=llm, streaming=streaming).query("bridge?")
    return "".join(response.response_gen) if streaming else response


CHAT_REQUEST = {"model": "meta-llama-3-8B-instruct", "messages": [{"role": "user", "content": "x"}]}
TEXT_REQUEST = {"model": "ModelsLab/Llama-3.1-8b-Uncensored-Dare", "prompt": "x"}


async def _core_async(models: Models) -> list[Any]:
    client = models.core(AsyncModelsLabClient)
    completions = models.core(AsyncModelsLabCompletionsClient)
    stream = await client.chat_stream(CHAT_REQUEST)
    text_stream = await completions.complete_stream(TEXT_REQUEST)
    return [
        client,
        await client.chat(CHAT_REQUEST),
        await adrain(stream),
        await completions.complete(TEXT_REQUEST),
        await adrain(text_stream),
        await client.list_models(),
    ]


def _core_sync(models: Models) -> list[Any]:
    client = models.core(ModelsLabClient)
    completions = models.core(ModelsLabCompletionsClient)
    return [
        client,
        client.config,
        client.chat(CHAT_REQUEST),
        list(client.chat_stream(CHAT_REQUEST)),
        completions.complete(TEXT_REQUEST),
        list(completions.complete_stream(TEXT_REQUEST)),
        client.list_models(),
    ]


PATHS: dict[str, Callable[[Models], Any]] = {
    "lc.invoke": lambda m: m.chat().invoke("hello"),
    "lc.ainvoke": lambda m: arun(m.chat().ainvoke("hello")),
    "lc.stream": lambda m: list(m.chat().stream("hello")),
    "lc.astream": lambda m: arun(adrain(m.chat().astream("hello"))),
    "lc.batch": lambda m: m.chat().batch(["a", "b"]),
    "lc.abatch": lambda m: arun(m.chat().abatch(["a", "b"])),
    "lc.astream_events": lambda m: arun(_events(m.chat())),
    "lc.invoke streaming": lambda m: m.chat(streaming=True).invoke("hello"),
    "lc.bind_tools": lambda m: m.chat().bind_tools([multiply]).invoke("multiply 6 and 7"),
    "lc.structured": lambda m: (
        m.chat()
        .with_structured_output(City, include_raw=True)
        .invoke("'Paris' has 2100000 inhabitants")
    ),
    "lc.list_models": lambda m: m.chat().list_models(),
    "lc.alist_models": lambda m: arun(m.chat().alist_models()),
    "lc.llm.invoke": lambda m: m.lc_llm().invoke("once upon"),
    "lc.llm.astream": lambda m: arun(adrain(m.lc_llm().astream("once upon"))),
    "lc.llm.batch": lambda m: m.lc_llm().batch(["a", "b"]),
    "li.chat": lambda m: m.li().chat(user("hello")),
    "li.achat": lambda m: arun(m.li().achat(user("hello"))),
    "li.stream_chat": lambda m: list(m.li().stream_chat(user("hello"))),
    "li.astream_chat": lambda m: arun(_li_astream(m.li())),
    "li.complete": lambda m: m.li().complete("hello"),
    "li.astream_complete": lambda m: arun(_li_astream_complete(m.li())),
    "li.text.complete": lambda m: m.li_text().complete("once upon"),
    "li.text.stream_complete": lambda m: list(m.li_text().stream_complete("once upon")),
    "li.predict": lambda m: m.li().predict(PromptTemplate("Say {x}"), x="hi"),
    "li.structured_predict": lambda m: m.li().structured_predict(
        City, PromptTemplate("{text}"), text="'Paris' has 2100000 inhabitants"
    ),
    "li.tools": lambda m: m.li().chat_with_tools([_li_tool()], user_msg="multiply 6 and 7"),
    "li.query": lambda m: _query(m.li(), streaming=False),
    "li.query streaming": lambda m: _query(m.li(), streaming=True),
    "core.sync": _core_sync,
    "core.async": lambda m: arun(_core_async(m)),
}


async def _li_astream(llm: ModelsLabLLM) -> list[Any]:
    return await adrain(await llm.astream_chat(user("hello")))


async def _li_astream_complete(llm: ModelsLabLLM) -> list[Any]:
    return await adrain(await llm.astream_complete("hello"))


def _li_tool() -> Any:
    from llama_index.core.tools import FunctionTool

    return FunctionTool.from_defaults(fn=multiply)


@pytest.fixture(params=["constructor", "env"])
def source(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=[False, True], ids=["header", "body"])
def in_body(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
def models(
    server: LocalModelsLab,
    witness: Witness,
    monkeypatch: pytest.MonkeyPatch,
    source: str,
    in_body: bool,
) -> Models:
    return Models(server, witness, monkeypatch, source, in_body)


def check_request_log(server: LocalModelsLab, in_body: bool) -> None:
    """The key reached the server only in the field meant to carry it: the server masks that
    field alone, and the key is nowhere else in the entry (URL, other headers, body)."""
    assert server.requests
    for entry in server.requests:
        if entry.method == "GET":  # the model list: no body to carry the key
            assert entry.key_placement == ("x-api-key" if in_body else "bearer")
        else:
            assert entry.key_placement == ("body" if in_body else "bearer")
        if entry.key_placement == "body":
            assert entry.body is not None and entry.body["key"] == "***"
        elif entry.key_placement == "x-api-key":
            assert entry.headers["x-api-key"] == "***"
        else:
            assert entry.headers["authorization"] == "***"
        assert KEY not in json.dumps(
            [entry.method, entry.path, entry.query, entry.headers, entry.body]
        )


# ----------------------------------------------------------------------------- answers


@pytest.mark.covering(2)  # each path with each key source and placement; all of them: --full-matrix
@pytest.mark.parametrize("path", list(PATHS))
def test_no_path_shows_the_key(
    server: LocalModelsLab, models: Models, witness: Witness, path: str, in_body: bool
) -> None:
    result = PATHS[path](models)
    # The recorders did see the run: the check below is not vacuous.
    assert logging.getLogger().isEnabledFor(logging.DEBUG)
    if path.startswith("li"):
        assert EVENTS and SPANS
    if path.startswith("lc") and "list_models" not in path:  # a model run, with callbacks
        assert witness.payloads and models.lc_recorder.events
    check_request_log(server, in_body)
    witness.check(result)


def test_serialized_objects_do_not_show_the_key(
    server: LocalModelsLab, models: Models, witness: Witness
) -> None:
    chat, lc_llm, li, li_text = models.chat(), models.lc_llm(), models.li(), models.li_text()
    chat.invoke("warm the clients up")
    li.chat(user("warm the clients up"))
    bound = chat.bind_tools([multiply])
    structured = chat.with_structured_output(City)
    objects: list[Any] = [
        chat,
        lc_llm,
        bound,
        structured,
        dumpd(chat),
        dumps(chat),
        dumps(chat, pretty=True),
        dumpd(lc_llm),
        dumpd(bound),
        dumpd(structured),
        chat.model_dump(),
        chat.model_dump_json(),
        chat.to_json(),
        chat._identifying_params,
        chat._get_ls_params(),
        chat._clients,
        lc_llm.model_dump(),
        li,
        li_text,
        li.to_dict(),
        li.to_json(),
        li.model_dump(),
        li.model_dump_json(),
        li.metadata,
        li._client(ModelsLabClient),
        li._client(AsyncModelsLabClient),
        li._client(ModelsLabClient).config,
        li_text.to_dict(),
    ]
    witness.check(*objects)
    # The key is where it must be: serialized LangChain objects name the secret, not its value.
    assert '"MODELSLAB_API_KEY"' in dumps(chat)


def test_a_bad_setting_does_not_show_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for build in (
        lambda: ChatModelsLab(api_key=KEY, temperature=9),
        lambda: ChatModelsLab(api_key=KEY, base_url="ftp://nowhere"),
        lambda: ChatModelsLab(api_key=KEY, max_tokens=0),
        lambda: LangChainLLM(api_key=KEY, top_p=3),
        lambda: ModelsLabLLM(api_key=KEY, temperature=9),
        lambda: ModelsLabLLM(api_key=KEY, timeout=-1),
        lambda: ModelsLabLLM(api_key=KEY, base_url="nowhere"),
        lambda: ModelsLabClient(api_key=KEY, timeout=0),
        lambda: ModelsLabClient(api_key=KEY, key_placement="query"),  # type: ignore[arg-type]
    ):
        with pytest.raises(ValueError) as info:
            build()
        assert KEY not in text_of(info.value)


# ----------------------------------------------------------------------------- errors

# Answers that echo the key back, in every shape an error can take.
ECHOES = {
    "401 message": lambda: Reply.error(401, {"status": "error", "message": f"Bad key {KEY}"}),
    "OpenAI 401": lambda: Reply.openai_error(401, f"Incorrect API key provided: {KEY}."),
    "200 envelope": lambda: Reply.error(200, {"status": "error", "message": f"Invalid {KEY}"}),
    "200 messege": lambda: Reply.misspelled_error(f"key {KEY} is not active"),
    "429 with the key": lambda: Reply.error(429, {"message": f"{KEY} is limited"}),
    "502 HTML": lambda: Reply.raw(502, f"<html><title>502 for {KEY}</title></html>", "text/html"),
    "200 not JSON": lambda: Reply.non_json(f"<html>warming up for {KEY}</html>"),
    "200 no choices": lambda: Reply.error(200, {"request": {"key": KEY}, "note": "no answer"}),
    "200 wrong shape": lambda: Reply.error(200, {"choices": f"{KEY}"}),
    "processing": lambda: Reply.error(
        200, {"status": "processing", "id": 9, "eta": 5, "fetch_result": f"https://x/?key={KEY}"}
    ),
    "stream error event": lambda: Reply.stream_error_event(f"upstream rejected {KEY}"),
    "stream error event ModelsLab style": lambda: Reply.stream_error_event(
        f"upstream rejected {KEY}", style="modelslab", after_chunks=1
    ),
    "stream event not JSON": lambda: Reply.raw(
        200, f"data: not json {KEY}\n\ndata: [DONE]\n\n", "text/event-stream"
    ),
    "stream event wrong shape": lambda: Reply.raw(
        200, f'data: {{"choices": "{KEY}"}}\n\ndata: [DONE]\n\n', "text/event-stream"
    ),
    "reset": lambda: Reply.reset_connection(after_bytes=250),
    "cut stream": lambda: Reply.cut_stream(after_chunks=1),
}

ERROR_PATHS = [
    "lc.invoke",
    "lc.astream",
    "lc.astream_events",
    "lc.llm.invoke",
    "li.chat",
    "li.astream_chat",
    "li.stream_chat",
    "li.text.stream_complete",
    "core.sync",
    "core.async",
]


@pytest.mark.covering(2)  # each echo on each path; every combination: --full-matrix
@pytest.mark.parametrize("path", ERROR_PATHS)
@pytest.mark.parametrize("echo", list(ECHOES))
def test_errors_do_not_show_the_key(
    server: LocalModelsLab, models: Models, witness: Witness, path: str, echo: str, in_body: bool
) -> None:
    reply = ECHOES[echo]()
    server.enqueue(*[reply] * 8)  # enough for every request of the path
    with pytest.raises(e.ModelsLabError) as info:
        PATHS[path](models)
    error = info.value
    server.reset()  # no reply left for the next test
    assert (
        isinstance(error, e.APIError) and error.message
    )  # a typed error with the server's words (scrubbed)
    if path.startswith("lc"):
        assert "on_llm_error" in models.lc_recorder.events or path == "lc.astream_events"
    witness.check(error)
