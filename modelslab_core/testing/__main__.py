"""Run the local ModelsLab server: ``python -m modelslab_core.testing [options]`` (``--help``
lists them) prints the base URLs, one per line, then ``READY``, and serves until Ctrl-C or
SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from ._server import DEFAULT_RETRY_AFTER, QUEUE_LIMIT_MESSAGE, LocalModelsLab
from ._wire import POPULAR_MODELS

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Start the server, print its URLs and ``READY``, and serve until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m modelslab_core.testing",
        description="Serve an offline, ModelsLab-compatible LLM API on this machine.",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    add("--port", type=int, default=0, help="TCP port (default: a free one)")
    add("--api-key", help="the only key accepted (default: any non-empty key)")
    add("--stream-delay", type=float, default=0.0, help="seconds between streamed events")
    add("--queue-limit", type=int, help="requests answered at once per key; more get HTTP 429")
    add("--latency", type=float, default=0.0, help="seconds before each answer's first byte")
    retry_help = "a queue-limit 429's retry_after (default: 30, as ModelsLab's)"
    add("--retry-after", type=float, default=DEFAULT_RETRY_AFTER, help=retry_help)
    add("--rate-limit-message", default=QUEUE_LIMIT_MESSAGE, help="a queue-limit 429's message")
    model_help = "a model id to accept besides ModelsLab's (repeatable); others get HTTP 404"
    add("--model", action="append", default=[], dest="models", help=model_help)
    options = vars(parser.parse_args(argv))  # named as LocalModelsLab's arguments
    if options["queue_limit"] is not None and options["queue_limit"] < 1:
        parser.error("--queue-limit must be >= 1")
    options["models"] = [*POPULAR_MODELS, *options["models"]]
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda signum, frame: stopping.set())
    with LocalModelsLab(**options) as server:
        print(f"url: {server.url}")
        print(f"chat: {server.base_url}")
        print(f"completions: {server.completions_base_url}")
        print(f"uncensored: {server.uncensored_base_url}")
        print(f"models: {server.base_url}/v1/models")
        print("READY", flush=True)
        while not stopping.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
