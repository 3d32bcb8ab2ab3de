"""Structured extraction: ChatModelsLab.with_structured_output turns free text into a pydantic
object, by tool calling (the default) or a JSON-schema response format.

Run: ``python examples/structured_extraction.py`` (offline against a local server without a key).
"""

from __future__ import annotations

from _target import modelslab_target
from langchain_core.prompts import ChatPromptTemplate
from pydantic import BaseModel, Field

from langchain_modelslab import ChatModelsLab


class Person(BaseModel):
    """A person mentioned in the text."""

    name: str = Field(description="The person's first name")
    age: int = Field(description="Age in years")
    city: str = Field(description="The city the person lives in")


prompt = ChatPromptTemplate.from_messages(
    [("system", "Extract the person described by the user."), ("human", "{text}")]
)

TEXTS = [
    "'Alice' is 31 years old and lives in 'Lyon'.",
    "Meet 'Bob', 45, who moved to 'Oslo' last year.",
]

with modelslab_target() as target:
    print(f"-- talking to {target.label}")
    llm = ChatModelsLab(
        model="meta-llama-3-8B-instruct",
        api_key=target.api_key,
        base_url=target.base_url,
        temperature=0,
    )

    extract = prompt | llm.with_structured_output(Person)  # method="function_calling"
    for person in extract.batch([{"text": text} for text in TEXTS]):
        print("tool calling:", repr(person))

    by_schema = prompt | llm.with_structured_output(Person, method="json_schema")
    print("json schema:", repr(by_schema.invoke({"text": TEXTS[0]})))

    raw = prompt | llm.with_structured_output(Person, include_raw=True)
    result = raw.invoke({"text": TEXTS[1]})
    print("include_raw:", repr(result["parsed"]), "| parsing error:", result["parsing_error"])
