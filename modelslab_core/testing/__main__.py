"""Run the local ModelsLab server from the command line.

``python -m modelslab_core.testing [--host 127.0.0.1] [--port 0] [--api-key KEY]
[--queue-limit N] [--latency SECONDS]`` prints the base URLs, one per line, then ``READY``, and
serves until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from ._server import QUEUE_LIMIT_MESSAGE, LocalModelsLab

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m modelslab_core.testing",
        description="Serve an offline, ModelsLab-compatible LLM API on this machine.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    parser.add_argument(
        "--api-key", default=None, help="the only key accepted (default: any non-empty key)"
    )
    parser.add_argument(
        "--stream-delay",
        type=float,
        default=0.0,
        help="seconds between streamed events (default 0: send them in batches)",
    )
    parser.add_argument(
        "--queue-limit",
        type=int,
        default=None,
        help="at most this many requests per key answered at once; more get HTTP 429 "
        "(default: no limit)",
    )
    parser.add_argument(
        "--latency",
        type=float,
        default=0.0,
        help="seconds each answer takes before its first byte (default 0)",
    )
    parser.add_argument(
        "--retry-after",
        type=float,
        default=None,
        help="the retry_after of a queue-limit 429 (default: when the oldest request is due)",
    )
    parser.add_argument(
        "--rate-limit-message",
        default=None,
        help="the message of a queue-limit 429; {limit} becomes the limit "
        "(default: 'Rate limit exceeded. Maximum {limit} queued requests allowed.')",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Start the server, print its URLs and ``READY``, and serve until interrupted."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.queue_limit is not None and args.queue_limit < 1:
        parser.error("--queue-limit must be >= 1")
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {
        signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    server = LocalModelsLab(
        api_key=args.api_key,
        host=args.host,
        port=args.port,
        stream_delay=args.stream_delay,
        queue_limit=args.queue_limit,
        latency=args.latency,
        retry_after=args.retry_after,
        rate_limit_message=args.rate_limit_message or QUEUE_LIMIT_MESSAGE,
    )
    try:
        server.start()
        try:
            print(f"url: {server.url}")
            print(f"chat: {server.base_url}")
            print(f"completions: {server.completions_base_url}")
            print(f"uncensored: {server.uncensored_base_url}")
            print(f"models: {server.base_url}/v1/models")
            print("READY", flush=True)
            while not stopping.wait(0.5):
                pass
        finally:
            server.stop()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
