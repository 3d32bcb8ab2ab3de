"""A LlamaIndex RAG pipeline over a folder of text files, answered by ModelsLab.

``SimpleDirectoryReader`` reads ``examples/data``; the vector index uses ``MockEmbedding`` so that
nothing is downloaded (use a real embedding model for real retrieval: with three small files,
``similarity_top_k=3`` retrieves all of them anyway). ``Settings.llm`` makes ModelsLab the LLM of
every query and chat engine.

Run: ``python examples/llama_index_rag.py`` (offline against a local server without a key; the
local server echoes the prompt, so its "answer" shows the retrieved text the engine sent).
"""

from __future__ import annotations

from pathlib import Path

from _target import modelslab_target
from llama_index.core import PromptTemplate, Settings, SimpleDirectoryReader, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding

from llama_index_modelslab import ModelsLabLLM

DATA = Path(__file__).parent / "data"
QA_PROMPT = PromptTemplate(
    "Answer in one sentence, from this context only.\n{context_str}\nQuestion: {query_str}\n"
)

with modelslab_target() as target:
    print(f"-- talking to {target.label}")
    Settings.llm = ModelsLabLLM(
        model="meta-llama-3-8B-instruct", api_key=target.api_key, base_url=target.base_url
    )
    Settings.embed_model = MockEmbedding(embed_dim=64)

    documents = SimpleDirectoryReader(str(DATA), required_exts=[".txt"]).load_data()
    for document in documents:  # the file's path is for us, not for the model
        document.excluded_llm_metadata_keys = list(document.metadata)
    print("documents:", sorted(d.metadata["file_name"] for d in documents))
    index = VectorStoreIndex.from_documents(documents)

    engine = index.as_query_engine(similarity_top_k=3, text_qa_template=QA_PROMPT)
    response = engine.query("What colour is the Zorblat bridge painted?")
    print("sources:", sorted(n.metadata["file_name"] for n in response.source_nodes))
    print("answer:", " ".join(str(response).split()))

    streaming = index.as_query_engine(
        similarity_top_k=3, text_qa_template=QA_PROMPT, streaming=True
    )
    print("streamed answer:", end=" ")
    for token in streaming.query("When is the lantern festival?").response_gen:
        print(token.replace("\n", " "), end="", flush=True)
    print()
