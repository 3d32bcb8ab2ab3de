"""Merging a stream of chunks into the answer it spells, pure.

Tool-call fragments are keyed by ``index`` (ModelsLab sends ``id`` and ``name`` only in the first
fragment), or by their ids when they carry none (:class:`ToolCallSlots`); several calls may
arrive in one chunk. The merged answer of a stream equals the non-streamed answer of the same
request: both frameworks and the tests rely on that.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .types import (
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatMessage,
    FunctionCall,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__all__ = ["ChoiceAccumulator", "StreamAccumulator", "ToolCallSlots"]


@dataclass
class ChoiceAccumulator:
    """The message of one choice, so far."""

    role: str = "assistant"
    content: str = ""
    reasoning: str = ""
    tool_calls: dict[int, ToolCall] = field(default_factory=dict)
    finish_reason: str | None = None

    def add_tool_call(self, delta: ToolCallDelta, index: int) -> ToolCall:
        """Add a fragment to call number ``index`` (see :class:`ToolCallSlots`)."""
        call = self.tool_calls.get(index)
        if call is None:
            call = self.tool_calls[index] = ToolCall(id="", function=FunctionCall())
        if delta.id:
            call.id = delta.id
        if delta.type:
            call.type = delta.type
        if delta.function is not None:
            if delta.function.name and not call.function.name:
                call.function.name = delta.function.name
            if delta.function.arguments:
                call.function.arguments += delta.function.arguments
        return call

    def message(self) -> ChatMessage:
        calls = [self.tool_calls[i] for i in sorted(self.tool_calls)]
        return ChatMessage(
            role=self.role,
            content=self.content or (None if calls else ""),
            reasoning_content=self.reasoning or None,
            tool_calls=calls or None,
        )


@dataclass
class ToolCallSlots:
    """Which call each streamed tool-call fragment belongs to, for one stream.

    A fragment's ``index`` says it. Without one (Gemini-style parallel calls: each call has its
    own id and no index), a fragment with a new id starts the next call and one without an id
    continues the last call. Both frameworks' streams use this one rule.
    """

    last: dict[int, tuple[int, str]] = field(default_factory=dict)

    def index(self, choice: int, delta: ToolCallDelta) -> int:
        """The call number of ``delta``, a fragment in choice ``choice``."""
        last = self.last.get(choice)
        if "index" in delta.model_fields_set or last is None:
            index = delta.index
        elif delta.id and last[1] and delta.id != last[1]:
            index = last[0] + 1
        else:
            index = last[0]
        same = last is not None and last[0] == index
        self.last[choice] = (index, delta.id or (last[1] if same and last is not None else ""))
        return index


@dataclass
class StreamAccumulator:
    """Feed it chunks with :meth:`add`; :meth:`completion` is the answer they make."""

    id: str = ""
    model: str = ""
    created: int = 0
    usage: Usage | None = None
    choices: dict[int, ChoiceAccumulator] = field(default_factory=dict)
    slots: ToolCallSlots = field(default_factory=ToolCallSlots)

    def add(self, chunk: ChatCompletionChunk) -> None:
        self.id = self.id or chunk.id
        self.model = self.model or chunk.model
        self.created = self.created or chunk.created
        if chunk.usage is not None:
            self.usage = chunk.usage
        for choice in chunk.choices:
            acc = self.choices.get(choice.index)
            if acc is None:
                acc = self.choices[choice.index] = ChoiceAccumulator()
            delta = choice.delta
            if delta.role:
                acc.role = delta.role
            if delta.content:
                acc.content += delta.content
            if delta.reasoning_content:
                acc.reasoning += delta.reasoning_content
            for call in delta.tool_calls or ():
                acc.add_tool_call(call, self.slots.index(choice.index, call))
            if choice.finish_reason:
                acc.finish_reason = choice.finish_reason

    def completion(self) -> ChatCompletion:
        return ChatCompletion(
            id=self.id,
            model=self.model,
            created=self.created,
            usage=self.usage,
            choices=[
                ChatChoice(index=i, message=acc.message(), finish_reason=acc.finish_reason)
                for i, acc in sorted(self.choices.items())
            ],
        )
