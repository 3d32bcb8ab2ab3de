"""LangChain integration for ModelsLab's LLM API (install with the `[langchain]` extra)."""
