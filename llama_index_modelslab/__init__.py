"""LlamaIndex integration for ModelsLab's LLM API (install with the ``[llama-index]`` extra)."""

from __future__ import annotations

try:
    import llama_index.core  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised by a test that hides the package
    raise ImportError(
        "llama_index_modelslab needs llama-index-core, which the [llama-index] extra brings. "
        'Install it with: pip install "llama-index-core>=0.14"'
    ) from exc

from modelslab_core._version import __version__

from .base import DEFAULT_MODEL, ModelsLabLLM

__all__ = ["DEFAULT_MODEL", "ModelsLabLLM", "__version__"]
