"""Hypothesis strategies both fuzz suites draw from: JSON values shaped like ModelsLab's chunks,
answers and error envelopes, with the words the parsers branch on."""

from __future__ import annotations

from hypothesis import strategies as st

texts = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30)

CHUNK_KEYS = ["id", "object", "created", "model", "choices", "usage", "error", "status",
              "message", "messege", "index", "delta", "finish_reason", "content", "tool_calls",
              "function", "arguments", "name", "reasoning_content", "role", "text", "retry_after",
              "prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details",
              "cached_tokens", "completion_tokens_details", "reasoning_tokens"]  # fmt: skip


# Values the parsers branch on, so that the error paths are reached, not only the happy ones.
WORDS = st.sampled_from(
    ["error", "failed", "processing", "queued", "success", "[DONE]", "stop", "tool_calls",
     "assistant", "function", "", "Invalid Api Key", "Rate limit exceeded", "insufficient"]
)  # fmt: skip
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts | WORDS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(CHUNK_KEYS) | texts, inner, max_size=4)
    ),
    max_leaves=12,
)

# Every field of every documented error shape, each present or not, with any value.
ERROR_FIELDS = ("status", "message", "messege", "error", "errors", "retry_after", "tip", "id",
                "eta", "detail", "code", "type", "fetch_result")  # fmt: skip
envelopes = st.fixed_dictionaries(
    {},
    optional={
        **dict.fromkeys(ERROR_FIELDS, json_values),
        "status": st.sampled_from(["error", "failed", "processing"]) | WORDS | json_values,
        "error": json_values
        | st.fixed_dictionaries(
            {}, optional=dict.fromkeys(("message", "type", "code"), json_values)
        ),
    },
)
