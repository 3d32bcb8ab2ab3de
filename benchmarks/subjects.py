"""The clients measured: raw httpx (the floor), the anchors users compare us with (ChatOpenAI,
LlamaIndex's OpenAILike) and ours, each behind the same three calls."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

MODEL = "meta-llama-3-8B-instruct"


@dataclass
class Subject:
    name: str
    family: str  # "raw", "langchain" or "llama_index"
    ours: bool
    call: Callable[[str], str]
    stream: Callable[[str], int]  # returns the number of chunks seen
    make_acall: Callable[[], Callable[[str], Awaitable[str]]]  # built inside the event loop
    close: Callable[[], None] = lambda: None


def _body(prompt: str, stream: bool = False) -> bytes:
    return json.dumps(
        {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "stream": stream}
    ).encode()


def raw_httpx(base_url: str, key: str) -> Subject:
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    url = f"{base_url}/chat/completions"
    client = httpx.Client(headers=headers)

    def call(prompt: str) -> str:
        data = client.post(url, content=_body(prompt)).json()
        return str(data["choices"][0]["message"]["content"])

    def stream(prompt: str) -> int:
        count = 0
        with client.stream("POST", url, content=_body(prompt, True)) as response:
            for line in response.iter_lines():
                if line.startswith("data: {"):
                    json.loads(line[6:])
                    count += 1
        return count

    def make_acall() -> Callable[[str], Awaitable[str]]:
        aclient = httpx.AsyncClient(
            headers=headers, limits=httpx.Limits(max_connections=512, max_keepalive_connections=256)
        )

        async def acall(prompt: str) -> str:
            data = (await aclient.post(url, content=_body(prompt))).json()
            return str(data["choices"][0]["message"]["content"])

        acall.aclose = aclient.aclose  # type: ignore[attr-defined]
        return acall

    return Subject("raw httpx", "raw", False, call, stream, make_acall, client.close)


def _langchain(name: str, ours: bool, factory: Callable[[], Any]) -> Subject:
    model = factory()

    def call(prompt: str) -> str:
        return str(model.invoke(prompt).content)

    def stream(prompt: str) -> int:
        return sum(1 for _ in model.stream(prompt))

    def make_acall() -> Callable[[str], Awaitable[str]]:
        async def acall(prompt: str) -> str:
            return str((await model.ainvoke(prompt)).content)

        return acall

    return Subject(name, "langchain", ours, call, stream, make_acall)


def chat_openai(base_url: str, key: str) -> Subject:
    from langchain_openai import ChatOpenAI

    return _langchain(
        "ChatOpenAI", False, lambda: ChatOpenAI(model=MODEL, base_url=base_url, api_key=key)
    )


def chat_modelslab(base_url: str, key: str) -> Subject:
    from langchain_modelslab import ChatModelsLab

    return _langchain(
        "ChatModelsLab", True, lambda: ChatModelsLab(model=MODEL, base_url=base_url, api_key=key)
    )


def _llama_index(name: str, ours: bool, factory: Callable[[], Any]) -> Subject:
    from llama_index.core.llms import ChatMessage

    llm = factory()

    def messages(prompt: str) -> list[ChatMessage]:
        return [ChatMessage(role="user", content=prompt)]

    def call(prompt: str) -> str:
        return str(llm.chat(messages(prompt)).message.content)

    def stream(prompt: str) -> int:
        return sum(1 for _ in llm.stream_chat(messages(prompt)))

    def make_acall() -> Callable[[str], Awaitable[str]]:
        async def acall(prompt: str) -> str:
            return str((await llm.achat(messages(prompt))).message.content)

        return acall

    return Subject(name, "llama_index", ours, call, stream, make_acall)


def openai_like(base_url: str, key: str) -> Subject:
    from llama_index.llms.openai_like import OpenAILike

    return _llama_index(
        "OpenAILike",
        False,
        lambda: OpenAILike(
            model=MODEL,
            api_base=base_url,
            api_key=key,
            is_chat_model=True,
            is_function_calling_model=True,
            context_window=8192,
        ),
    )


def modelslab_llama_index(base_url: str, key: str) -> Subject:
    from llama_index_modelslab import ModelsLabLLM

    return _llama_index(
        "ModelsLabLLM (LlamaIndex)",
        True,
        lambda: ModelsLabLLM(model=MODEL, base_url=base_url, api_key=key),
    )


ALL = [raw_httpx, chat_openai, chat_modelslab, openai_like, modelslab_llama_index]
