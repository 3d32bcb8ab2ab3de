"""Structured output extraction over real sockets: function calling and JSON response formats.

The model's answer is scripted (a call of the ``Invoice`` tool, or the invoice as JSON text): the
tests check the request our adapter sent (the email, the tool or the response format) and the
``Invoice`` it built from the scripted answer.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from llama_index.core.llms import ChatMessage
from llama_index.core.program import FunctionCallingProgram
from llama_index.core.prompts import PromptTemplate
from pydantic import BaseModel, Field

from llama_index_modelslab import ModelsLabLLM
from modelslab_core.testing import LocalModelsLab, Reply

PROMPT = PromptTemplate("Extract the invoice from this email:\n{email}")
EMAIL = 'Hello, please pay invoice "INV-ALPHA" from "Acme Tools" for 1250 dollars within 30 days.'
#: What the (scripted) model extracts from the email.
FIELDS = {"number": "INV-ALPHA", "vendor": "Acme Tools", "amount": 1250, "due_in_days": 30}


class Invoice(BaseModel):
    """An invoice mentioned in an email."""

    number: str = Field(description="The invoice number")
    vendor: str = Field(description="Who sent the invoice")
    amount: float = Field(description="The amount due")
    due_in_days: int = Field(description="Days until payment is due")


def check(invoice: Invoice) -> None:
    assert invoice == Invoice(number="INV-ALPHA", vendor="Acme Tools", amount=1250, due_in_days=30)


def check_tool_request(body: dict[str, Any], tool_choice: str = "required") -> None:
    """The request offered ``Invoice`` as the one tool (and required a call of it: LlamaIndex's
    streaming programs leave the choice to the model, ``auto``, as with its OpenAI LLM)."""
    (tool,) = body["tools"]
    assert tool["function"]["name"] == "Invoice"
    assert tool["function"]["parameters"]["required"] == list(FIELDS)
    assert body["tool_choice"] == tool_choice
    assert "response_format" not in body
    assert EMAIL in str(body["messages"])


@pytest.mark.parametrize("function_calling", [True, False])
def test_structured_predict_extracts_an_invoice(
    server: LocalModelsLab, function_calling: bool
) -> None:
    llm = ModelsLabLLM(
        api_key="test-key", base_url=server.base_url, is_function_calling_model=function_calling
    )
    if function_calling:
        server.enqueue(Reply.tool_call("Invoice", FIELDS))
    else:
        server.enqueue(Reply.text(json.dumps(FIELDS)))
    check(llm.structured_predict(Invoice, PROMPT, email=EMAIL))
    (request,) = server.requests
    body = request.body or {}
    if function_calling:
        check_tool_request(body)
    else:
        assert EMAIL in str(body["messages"])
        assert "tools" not in body
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["name"] == "Invoice"
        assert body["response_format"]["json_schema"]["schema"]["required"] == list(FIELDS)
    assert server.pending_replies == 0


async def test_astructured_predict_and_stream(llm: ModelsLabLLM, server: LocalModelsLab) -> None:
    server.enqueue(Reply.tool_call("Invoice", FIELDS), Reply.tool_call("Invoice", FIELDS))
    check(await llm.astructured_predict(Invoice, PROMPT, email=EMAIL))
    partials = [p async for p in await llm.astream_structured_predict(Invoice, PROMPT, email=EMAIL)]
    assert len(partials) > 1  # the call's arguments arrive in pieces
    final = partials[-1]
    check(Invoice.model_validate(final.model_dump()))
    whole, streamed = (r.body or {} for r in server.requests)
    check_tool_request(whole)
    check_tool_request(streamed, tool_choice="auto")
    assert (whole["stream"], streamed["stream"]) == (False, True)
    assert server.pending_replies == 0


def test_as_structured_llm_chat_and_stream(llm: ModelsLabLLM, server: LocalModelsLab) -> None:
    server.enqueue(Reply.tool_call("Invoice", FIELDS), Reply.tool_call("Invoice", FIELDS))
    structured = llm.as_structured_llm(Invoice)
    response = structured.chat([ChatMessage(role="user", content=EMAIL)])
    assert isinstance(response.raw, Invoice)
    check(response.raw)
    assert json.loads(response.message.content or "") == FIELDS
    last = list(structured.stream_chat([ChatMessage(role="user", content=EMAIL)]))[-1]
    check(Invoice.model_validate(last.raw.model_dump()))
    whole, streamed = (r.body or {} for r in server.requests)
    check_tool_request(whole)
    check_tool_request(streamed, tool_choice="auto")
    assert server.pending_replies == 0


def test_function_calling_program(llm: ModelsLabLLM, server: LocalModelsLab) -> None:
    server.enqueue(Reply.tool_call("Invoice", FIELDS))
    program = FunctionCallingProgram.from_defaults(
        output_cls=Invoice, prompt_template_str="Extract: {email}", llm=llm
    )
    check(program(email=EMAIL))
    (request,) = server.requests
    check_tool_request(request.body or {})
    assert server.pending_replies == 0
