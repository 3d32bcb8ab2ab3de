"""``make demo``: the adapter, LangChain and LlamaIndex, one section each.

Without ``MODELSLAB_API_KEY`` one local ModelsLab server is started and shared by all three
sections (nothing leaves this machine); with the key set, every section talks to the live API.
Each section is also a script of its own: ``examples/{core,langchain,llama_index}_quickstart.py``.
"""

from __future__ import annotations

import core_quickstart
import langchain_quickstart
import llama_index_quickstart
from _target import modelslab_target

OFFLINE_NOTE = (
    "No MODELSLAB_API_KEY is set, so the answers below come from the local server's echo model:\n"
    "it repeats your words back (and makes the tool calls and JSON they ask for), so\n"
    '"Say hello in French." answers "Say hello in French.". Set MODELSLAB_API_KEY to ask a real\n'
    "model."
)

SECTIONS = [
    ("modelslab_core (the adapter)", core_quickstart.run),
    ("LangChain: ChatModelsLab", langchain_quickstart.run),
    ("LlamaIndex: ModelsLabLLM", llama_index_quickstart.run),
]


def main() -> None:
    with modelslab_target() as target:
        print(f"Talking to {target.label}.")
        if not target.live:
            print(OFFLINE_NOTE)
        for title, run in SECTIONS:
            print(f"\n== {title} ==")
            run(target)


if __name__ == "__main__":
    main()
