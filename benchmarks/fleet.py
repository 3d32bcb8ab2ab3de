"""Bursts from P processes sharing one key (gunicorn workers, Celery, replicas): with one account
gate shared through Redis, without it, and the anchors ``ChatOpenAI`` and ``OpenAILike``.

Each process is a ``python -m benchmarks.burst --child ...`` of its own: it imports its framework,
warms up with a key of its own, prints ``READY``, reads the common start time on stdin, sends its
share of the burst at that time and prints the wall-clock time of each answer as JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import burst


@contextmanager
def redis_server() -> Iterator[str | None]:
    """A ``redis-server`` on a free port in a temporary folder (stopped by its PID), or None
    when none is installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        print(
            "redis-server is not installed (apt-get install -y redis-server): "
            "the runs with Redis are left out",
            file=sys.stderr,
        )
        yield None
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as folder:
        command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", folder]
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(500):
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    time.sleep(0.02)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(10)


def child(base_url: str, key: str, count: int, subject: str, redis_url: str | None) -> None:
    """One of the processes sharing ``key``: warm up, ``READY``, wait for the start time on
    stdin, send ``count`` calls, print the answers' wall-clock times and the failures."""
    _, _, factory, how = next(s for s in burst.SUBJECTS if s[0] == subject)
    options = {} if redis_url is None else {"redis_url": redis_url}
    how(factory(base_url, burst.new_key(), **options), 1)  # warm, with a key of its own
    model = factory(base_url, key, **options)
    print("READY", flush=True)
    start_at = float(sys.stdin.readline())
    time.sleep(max(start_at - time.time(), 0.0))
    begin = time.time()
    times, failed = how(model, count)
    print(json.dumps({"times": [begin + t for t in times], "failed": failed}), flush=True)


def measure_processes(
    server: burst.QueueServer,
    count: int,
    processes: int,
    subject: str,
    redis_url: str | None,
    *,
    ours: bool,
    target: float | None = None,
    max_rate_limited: int | None = None,
) -> burst.Run:
    """``count`` calls at once from ``processes`` processes (``count / processes`` each) sharing
    one new key; through Redis when ``redis_url`` is given."""
    key = burst.new_key()
    children = []
    for _ in range(processes):
        command = [sys.executable, "-m", "benchmarks.burst", "--child", server.base_url, key]
        command += [str(count // processes), subject, redis_url or "-"]
        children.append(
            subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                cwd=burst.ROOT,
            )
        )
    for proc in children:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == "READY":
                break
        else:
            raise RuntimeError(f"a process of {subject} failed before it was ready")
    server.reset()
    start_at = time.time() + 0.5
    outputs: list[dict[str, Any]] = []
    for proc in children:
        assert proc.stdin is not None
        proc.stdin.write(f"{start_at!r}\n")
        proc.stdin.flush()
    for proc in children:
        out, _ = proc.communicate(timeout=900)
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    stats = server.stats()
    times = sorted(t - start_at for out in outputs for t in out["times"])
    failed = sum(out["failed"] for out in outputs)
    elapsed = times[-1] if times else float("inf")
    sharing = "one gate on Redis" if redis_url else "no Redis"
    run = burst.Run(
        scenario=f"{processes} processes, one key, {sharing}",
        subject=f"{subject} x{processes}",
        ours=ours,
        queue=server.queue,
        calls=count,
        answered=len(times),
        failed=failed,
        rate_limited=int(stats["rate_limited"]),
        max_queued=int(stats["max_queued"]),
        elapsed_s=elapsed,
        efficiency=len(times) * burst.LATENCY / server.queue / elapsed,
        times=times,
        target=target,
        processes=processes,
        redis=redis_url is not None,
        max_rate_limited=max_rate_limited,
    )
    if target is not None:
        run.met = run.answered == count and failed == 0 and run.efficiency >= target
        if max_rate_limited is not None:
            run.met = run.met and run.rate_limited <= max_rate_limited
    print(burst.row(run), file=sys.stderr, flush=True)
    return run


def run_fleet(server: burst.QueueServer, count: int, quick: bool) -> list[burst.Run]:
    """P = 2, 4, 8 with Redis (targets: >= 90 % of Q/L, at most 40 429s in all) and without;
    the anchors at P = 4."""
    runs: list[burst.Run] = []
    counts = (2, 4) if quick else (2, 4, 8)
    ours = "ChatModelsLab abatch"
    with redis_server() as url:
        for processes in counts:
            if url is not None:
                runs.append(
                    measure_processes(
                        server,
                        count,
                        processes,
                        ours,
                        url,
                        ours=True,
                        target=0.90,
                        max_rate_limited=40,
                    )
                )
            runs.append(measure_processes(server, count, processes, ours, None, ours=True))
    if not quick:
        for anchor in ("ChatOpenAI abatch", "OpenAILike gather"):
            runs.append(measure_processes(server, count, 4, anchor, None, ours=False))
    return runs
