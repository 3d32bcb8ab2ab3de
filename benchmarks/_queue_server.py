"""The local server in queue-limit mode, in its own process, answering ``stats`` and ``reset``
on stdin (one JSON line each on stdout) so the burst benchmark can count the 429s it caused.

``python -m benchmarks._queue_server --queue-limit 5 --latency 0.2 [--stream-delay S]
[--rate-limit-message TEXT] [--retry-after S]`` prints ``chat: URL`` then ``READY``.
"""

from __future__ import annotations

import argparse
import json
import sys

from modelslab_core.testing import LocalModelsLab


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks._queue_server")
    parser.add_argument("--queue-limit", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--stream-delay", type=float, default=0.0)
    parser.add_argument("--rate-limit-message", default=None)
    parser.add_argument("--retry-after", type=float, default=30.0)
    args = parser.parse_args(argv)
    options = {}
    if args.rate_limit_message is not None:
        options["rate_limit_message"] = args.rate_limit_message
    server = LocalModelsLab(
        queue_limit=args.queue_limit,
        latency=args.latency,
        stream_delay=args.stream_delay,
        max_recorded_requests=0,
        retry_after=args.retry_after,
        **options,
    )
    with server:
        print(f"chat: {server.base_url}", flush=True)
        print("READY", flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "stats":
                stats = {
                    "rate_limited": server.rate_limited_count,
                    "max_queued": server.max_queued_seen,
                    "requests": server.request_count,
                }
                print(json.dumps(stats), flush=True)
            elif command == "reset":
                server.reset_stats()
                print("{}", flush=True)
            elif command == "quit":
                break
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
