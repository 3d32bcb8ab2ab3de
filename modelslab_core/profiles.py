"""What we know of ModelsLab's models: context window, output limit, and capabilities.

ModelsLab's model list gives ids only (no context windows or capabilities), so the project keeps
this table of the popular models of ModelsLab's LLM catalogue (https://modelslab.com/models and
https://docs.modelslab.com/llm-api/chat-completions). Unknown ids get :data:`DEFAULT_PROFILE`:
conservative limits, and tool calling on, because the chat endpoint documents tools for all models.
Both framework layers read this one table.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["DEFAULT_PROFILE", "PROFILES", "ModelProfile", "get_profile"]


@dataclass(frozen=True)
class ModelProfile:
    context_window: int = 8192
    max_output_tokens: int = 4096
    tool_calling: bool = True
    #: Native structured output: the API honours a ``json_schema`` response format. ModelsLab
    #: documents tools and ``json_object`` only, so no model claims it; structured output works
    #: through tool calling (LangChain's ``with_structured_output``, LlamaIndex's programs).
    structured_output: bool = False
    vision: bool = False
    reasoning: bool = False
    #: Whether the model is served on the chat endpoint (False: text completions only).
    chat: bool = True


DEFAULT_PROFILE = ModelProfile()

#: Each model: context window, output limit, then what differs from the defaults.
PROFILES: dict[str, ModelProfile] = {
    "meta-llama-3-8B-instruct": ModelProfile(8192, 4096),
    "meta-llama-Llama-3.3-70B-Instruct-Turbo": ModelProfile(131072, 8192),
    "meta-llama-Meta-Llama-3.1-405B-Instruct-Turbo": ModelProfile(131072, 8192),
    "deepseek-ai-DeepSeek-R1-Distill-Llama-70B": ModelProfile(131072, 8192, reasoning=True),
    "deepseek-ai-DeepSeek-V3": ModelProfile(131072, 8192),
    "gemini-2.0-flash-001": ModelProfile(1_048_576, 8192, vision=True),
    "gemini-2.5-pro": ModelProfile(1_048_576, 65536, vision=True, reasoning=True),
    "Qwen-Qwen2.5-72B-Instruct-Turbo": ModelProfile(32768, 8192),
    "Qwen-Qwen2.5-Coder-32B-Instruct": ModelProfile(32768, 8192),
    "mistralai-Mixtral-8x7B-Instruct-v0.1": ModelProfile(32768, 4096),
    "mistralai-Mistral-Small-24B-Instruct-2501": ModelProfile(32768, 8192),
    "Qwen/Qwen2.5-VL-72B-Instruct-together": ModelProfile(32768, 8192, vision=True),
    "ModelsLab/Llama-3.1-8b-Uncensored-Dare": ModelProfile(
        131072, 44000, tool_calling=False, chat=False
    ),
}

_LOWER = {name.lower(): profile for name, profile in PROFILES.items()}


def get_profile(model: str) -> ModelProfile:
    """The profile of ``model`` (case-insensitive), or a safe default for an unknown id.

    An unknown id that looks like a reasoning model (``r1``, ``reason``, ``think``) is marked so.
    """
    lowered = model.lower()
    profile = _LOWER.get(lowered)
    if profile is not None:
        return profile
    if "-r1" in lowered or "reason" in lowered or "think" in lowered:
        return replace(DEFAULT_PROFILE, reasoning=True)
    return DEFAULT_PROFILE
