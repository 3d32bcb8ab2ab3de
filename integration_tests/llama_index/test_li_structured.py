"""Structured output extraction over real sockets: function calling and JSON response formats."""

from __future__ import annotations

import pytest
from llama_index.core.llms import ChatMessage
from llama_index.core.program import FunctionCallingProgram
from llama_index.core.prompts import PromptTemplate
from pydantic import BaseModel, Field

from llama_index_modelslab import ModelsLabLLM
from modelslab_core.testing import LocalModelsLab

PROMPT = PromptTemplate("Extract the invoice from this email:\n{email}")
EMAIL = 'Hello, please pay invoice "INV-ALPHA" from "Acme Tools" for 1250 dollars within 30 days.'


class Invoice(BaseModel):
    """An invoice mentioned in an email."""

    number: str = Field(description="The invoice number")
    vendor: str = Field(description="Who sent the invoice")
    amount: float = Field(description="The amount due")
    due_in_days: int = Field(description="Days until payment is due")


def check(invoice: Invoice) -> None:
    assert invoice == Invoice(number="INV-ALPHA", vendor="Acme Tools", amount=1250, due_in_days=30)


@pytest.mark.parametrize("function_calling", [True, False])
def test_structured_predict_extracts_an_invoice(
    server: LocalModelsLab, function_calling: bool
) -> None:
    llm = ModelsLabLLM(
        api_key="test-key", base_url=server.base_url, is_function_calling_model=function_calling
    )
    check(llm.structured_predict(Invoice, PROMPT, email=EMAIL))
    body = server.requests[-1].body or {}
    assert EMAIL in str(body["messages"])
    if function_calling:
        assert body["tools"][0]["function"]["name"] == "Invoice"
        assert body["tool_choice"] == "required"
    else:
        assert body["response_format"]["json_schema"]["name"] == "Invoice"


async def test_astructured_predict_and_stream(llm: ModelsLabLLM) -> None:
    check(await llm.astructured_predict(Invoice, PROMPT, email=EMAIL))
    partials = [p async for p in await llm.astream_structured_predict(Invoice, PROMPT, email=EMAIL)]
    final = partials[-1]
    check(Invoice.model_validate(final.model_dump()))


def test_as_structured_llm_chat_and_stream(llm: ModelsLabLLM) -> None:
    structured = llm.as_structured_llm(Invoice)
    response = structured.chat([ChatMessage(role="user", content=EMAIL)])
    assert isinstance(response.raw, Invoice)
    check(response.raw)
    last = list(structured.stream_chat([ChatMessage(role="user", content=EMAIL)]))[-1]
    check(Invoice.model_validate(last.raw.model_dump()))


def test_function_calling_program(llm: ModelsLabLLM) -> None:
    program = FunctionCallingProgram.from_defaults(
        output_cls=Invoice, prompt_template_str="Extract: {email}", llm=llm
    )
    check(program(email=EMAIL))
