"""LangChain integration for ModelsLab's LLM API (install with the ``[langchain]`` extra).

``ChatModelsLab`` (chat completions) and ``ModelsLabLLM`` (text completions), and the error
classes that are both ``modelslab_core`` errors and langchain-core's ``Model*Error`` exceptions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

try:
    # First, before our modules: loading langchain-core's chat model stack ahead of the adapter
    # is measurably faster (~30 ms) than the other order.
    import langchain_core.language_models.chat_models  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by a test that hides langchain_core
    raise ImportError(
        "langchain_modelslab needs langchain-core (and langchain for agents), which the "
        '[langchain] extra brings. Install them with: pip install "langchain-core>=1.0" '
        '"langchain>=1.0"'
    ) from exc

from modelslab_core._version import __version__

from . import _errors
from ._errors import *  # noqa: F403 - the error classes and translate_error
from .chat_models import DEFAULT_MODEL, ChatModelsLab

if TYPE_CHECKING:
    from .llms import DEFAULT_COMPLETION_MODEL, ModelsLabLLM


def __getattr__(name: str) -> Any:
    # The text-completion model is loaded on first use: langchain-core's BaseLLM module pulls in
    # yaml and tenacity, which would make `import langchain_modelslab` ~25% slower for chat users.
    if name in ("ModelsLabLLM", "DEFAULT_COMPLETION_MODEL"):
        from . import llms

        return getattr(llms, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_COMPLETION_MODEL",
    "DEFAULT_MODEL",
    "ChatModelsLab",
    "ModelsLabLLM",
    "__version__",
]
__all__ += _errors.__all__  # the error classes and translate_error
