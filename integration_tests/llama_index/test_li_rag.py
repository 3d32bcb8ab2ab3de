"""RAG over real sockets: the retrieved text reaches the server in the prompt.

Embeddings come from ``MockEmbedding`` (nothing is downloaded); the three documents are all
retrieved (``similarity_top_k=3``), so the test checks the prompt, not the ranking.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import ChatMessage
from llama_index.core.memory import ChatMemoryBuffer

from llama_index_modelslab import ModelsLabLLM
from modelslab_core.testing import LocalModelsLab, Reply

FACTS = [
    "The Zorblat bridge in Quenford was finished in 1887 and is painted teal.",
    "Quenford's annual lantern festival takes place on the third Friday of October.",
    "The Quenford river otter colony counts about forty animals.",
]


@pytest.fixture
def index() -> VectorStoreIndex:
    documents = [Document(text=fact) for fact in FACTS]
    return VectorStoreIndex.from_documents(documents, embed_model=MockEmbedding(embed_dim=8))


@pytest.fixture
def as_settings(llm: ModelsLabLLM) -> Iterator[ModelsLabLLM]:
    previous_llm, previous_embed = Settings._llm, Settings._embed_model
    Settings.llm = llm
    Settings.embed_model = MockEmbedding(embed_dim=8)
    try:
        yield llm
    finally:
        Settings._llm, Settings._embed_model = previous_llm, previous_embed


def buffer_memory() -> ChatMemoryBuffer:
    # LlamaIndex's default Memory opens an aiosqlite connection it never closes (a
    # ResourceWarning that is not ours); an in-process buffer keeps the test clean.
    return ChatMemoryBuffer.from_defaults(token_limit=4000)


def prompt_text(server: LocalModelsLab) -> str:
    body = server.requests[-1].body or {}
    return "\n".join(str(m.get("content")) for m in body["messages"])


def test_settings_llm_is_ours(as_settings: ModelsLabLLM) -> None:
    assert Settings.llm is as_settings
    assert Settings.llm.complete("ping").text == "ping"


def test_query_engine_sends_the_retrieved_text(
    as_settings: ModelsLabLLM, index: VectorStoreIndex, server: LocalModelsLab
) -> None:
    server.enqueue(Reply.text("It is painted teal."))
    engine = index.as_query_engine(similarity_top_k=3)
    response = engine.query("What colour is the Zorblat bridge?")
    assert str(response) == "It is painted teal."
    assert len(response.source_nodes) == 3
    sent = prompt_text(server)
    assert "What colour is the Zorblat bridge?" in sent
    for fact in FACTS:
        assert fact in sent


def test_streaming_query_engine(
    llm: ModelsLabLLM, index: VectorStoreIndex, server: LocalModelsLab
) -> None:
    server.enqueue(Reply.text("On the third Friday of October."))
    engine = index.as_query_engine(llm=llm, streaming=True, similarity_top_k=3)
    response = engine.query("When is the lantern festival?")
    tokens = list(response.response_gen)  # type: ignore[union-attr]
    assert len(tokens) > 1
    assert "".join(tokens) == "On the third Friday of October."
    assert (server.requests[-1].body or {})["stream"] is True
    assert FACTS[1] in prompt_text(server)


async def test_async_query_engine(
    llm: ModelsLabLLM, index: VectorStoreIndex, server: LocalModelsLab
) -> None:
    server.enqueue(Reply.text("About forty."))
    engine = index.as_query_engine(llm=llm, similarity_top_k=3)
    response = await engine.aquery("How many otters live in Quenford?")
    assert str(response) == "About forty."
    assert FACTS[2] in prompt_text(server)


@pytest.mark.parametrize("chat_mode", ["context", "condense_plus_context"])
def test_chat_engine(
    llm: ModelsLabLLM, index: VectorStoreIndex, server: LocalModelsLab, chat_mode: str
) -> None:
    engine = index.as_chat_engine(
        chat_mode=chat_mode, llm=llm, similarity_top_k=3, memory=buffer_memory()
    )
    server.enqueue(Reply.text("It was finished in 1887."))
    first = engine.chat("When was the Zorblat bridge finished?")
    assert str(first) == "It was finished in 1887."
    assert FACTS[0] in prompt_text(server)
    server.enqueue(Reply.text("Quenford."), Reply.text("Quenford."))
    engine.chat("Which town is it in?")
    history = (server.requests[-1].body or {})["messages"]
    assert {"role": "assistant", "content": "It was finished in 1887."} in history


def test_default_chat_engine_answers(
    llm: ModelsLabLLM, index: VectorStoreIndex, server: LocalModelsLab
) -> None:
    engine = index.as_chat_engine(llm=llm, similarity_top_k=3, memory=buffer_memory())
    response = engine.chat("Tell me about the Zorblat bridge")
    assert str(response)
    assert any(FACTS[0] in str(r.body) for r in server.requests)
    assert isinstance(engine.chat_history[-1], ChatMessage)
