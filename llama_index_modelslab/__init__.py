"""LlamaIndex integration for ModelsLab's LLM API (install with the `[llama-index]` extra)."""
