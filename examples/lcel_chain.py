"""An LCEL chain: a prompt template, ChatModelsLab and a string parser, invoked, streamed and
batched.

Run: ``python examples/lcel_chain.py`` (offline against a local server without a key).
"""

from __future__ import annotations

from _target import modelslab_target
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from langchain_modelslab import ChatModelsLab

prompt = ChatPromptTemplate.from_messages(
    [
        ("system", "You translate English into {language}. Answer with the translation only."),
        ("human", "{text}"),
    ]
)

with modelslab_target() as target:
    print(f"-- talking to {target.label}")
    llm = ChatModelsLab(
        model="meta-llama-3-8B-instruct", api_key=target.api_key, base_url=target.base_url
    )
    chain = prompt | llm | StrOutputParser()

    print("invoke:", chain.invoke({"language": "French", "text": "Good morning, my friend"}))

    print("stream:", end=" ")
    for piece in chain.stream({"language": "German", "text": "See you tomorrow"}):
        print(piece, end="", flush=True)
    print()

    inputs = [{"language": "Spanish", "text": t} for t in ("Thank you", "Good night")]
    for text in chain.batch(inputs):
        print("batch:", text)
