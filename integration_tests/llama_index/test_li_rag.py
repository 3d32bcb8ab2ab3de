"""RAG over real sockets: the retrieved text reaches the server in the prompt.

Embeddings come from ``MockEmbedding`` (nothing is downloaded); the three documents are all
retrieved (``similarity_top_k=3``), so the test checks the prompt, not the ranking.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import ChatMessage, MessageRole
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


def test_settings_llm_set_to_the_model_answers_through_it(
    as_settings: ModelsLabLLM, server: LocalModelsLab
) -> None:
    server.enqueue(Reply.text("pong"))
    assert Settings.llm is as_settings
    assert Settings.llm.complete("ping").text == "pong"
    (request,) = server.requests
    assert (request.body or {})["messages"] == [{"role": "user", "content": "ping"}]
    assert server.pending_replies == 0


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


def test_a_streaming_query_engine_streams_the_answer_to_the_retrieved_text(
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


async def test_an_async_query_engine_sends_the_retrieved_text(
    llm: ModelsLabLLM, index: VectorStoreIndex, server: LocalModelsLab
) -> None:
    server.enqueue(Reply.text("About forty."))
    engine = index.as_query_engine(llm=llm, similarity_top_k=3)
    response = await engine.aquery("How many otters live in Quenford?")
    assert str(response) == "About forty."
    assert FACTS[2] in prompt_text(server)


@pytest.mark.parametrize("chat_mode", ["context", "condense_plus_context"])
def test_a_chat_engine_sends_the_retrieved_text_and_keeps_the_history(
    llm: ModelsLabLLM, index: VectorStoreIndex, server: LocalModelsLab, chat_mode: str
) -> None:
    engine = index.as_chat_engine(
        chat_mode=chat_mode, llm=llm, similarity_top_k=3, memory=buffer_memory()
    )
    server.enqueue(Reply.text("It was finished in 1887."))
    first = engine.chat("When was the Zorblat bridge finished?")
    assert str(first) == "It was finished in 1887."
    assert FACTS[0] in prompt_text(server)
    assert len(server.requests) == 1
    # The second turn: condense_plus_context first asks the model to condense the question.
    condensing = chat_mode == "condense_plus_context"
    if condensing:
        server.enqueue(Reply.text("Which town is the Zorblat bridge in?"))
    server.enqueue(Reply.text("Quenford."))
    second = engine.chat("Which town is it in?")
    assert str(second) == "Quenford."
    assert len(server.requests) == (3 if condensing else 2)
    if condensing:
        condense_prompt = str((server.requests[1].body or {})["messages"])
        assert "It was finished in 1887." in condense_prompt
        assert "Which town is it in?" in condense_prompt
    history = (server.requests[-1].body or {})["messages"]
    assert history[-3:] == [
        {"role": "user", "content": "When was the Zorblat bridge finished?"},
        {"role": "assistant", "content": "It was finished in 1887."},
        {"role": "user", "content": "Which town is it in?"},
    ]
    last = engine.chat_history[-1]
    assert (last.role, last.content) == (MessageRole.ASSISTANT, "Quenford.")
    assert server.pending_replies == 0


def test_default_chat_engine_answers(
    llm: ModelsLabLLM, index: VectorStoreIndex, server: LocalModelsLab
) -> None:
    server.enqueue(Reply.text("It was finished in 1887 and is painted teal."))
    engine = index.as_chat_engine(llm=llm, similarity_top_k=3, memory=buffer_memory())
    response = engine.chat("Tell me about the Zorblat bridge")
    assert str(response) == "It was finished in 1887 and is painted teal."
    (request,) = server.requests
    messages = (request.body or {})["messages"]
    assert FACTS[0] in str(messages)
    assert messages[-1] == {"role": "user", "content": "Tell me about the Zorblat bridge"}
    last = engine.chat_history[-1]
    assert isinstance(last, ChatMessage)
    assert (last.role, last.content) == (MessageRole.ASSISTANT, str(response))
    assert server.pending_replies == 0
