"""The measurements: sequential latency, stream throughput, async throughput, import time.

Each returns a plain number; the caller runs every subject in one process and one run, so that the
ratios compare like with like on a noisy shared machine.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

from .subjects import Subject

PROMPT = "Say hello to the benchmark."


def long_prompt(words: int) -> str:
    """The local server echoes the prompt word by word: ``words`` words make ``words`` chunks."""
    return " ".join(f"w{i}" for i in range(words))


def ms_per_call(subject: Subject, calls: int = 300, warmup: int = 20) -> float:
    for _ in range(warmup):
        subject.call(PROMPT)
    start = time.perf_counter()
    for _ in range(calls):
        subject.call(PROMPT)
    return (time.perf_counter() - start) / calls * 1000


def stream_chunks_per_s(subject: Subject, words: int = 2000, repeats: int = 3) -> float:
    prompt = long_prompt(words)
    subject.stream(long_prompt(50))
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        chunks = subject.stream(prompt)
        elapsed = time.perf_counter() - start
        if chunks < words:
            raise RuntimeError(f"{subject.name} streamed {chunks} chunks for {words} words")
        best = max(best, chunks / elapsed)
    return best


def async_calls_per_s(
    subject: Subject, calls: int = 512, in_flight: int = 64, repeats: int = 3
) -> float:
    """Best of ``repeats`` runs, each in a fresh event loop: a run of 512 calls lasts a fraction
    of a second, and one garbage collection of a framework's heap can halve a single run."""
    return max(_async_run(subject, calls, in_flight) for _ in range(repeats))


def _async_run(subject: Subject, calls: int, in_flight: int) -> float:
    async def run() -> float:
        acall = subject.make_acall()
        gate = asyncio.Semaphore(in_flight)

        async def one() -> str:
            async with gate:
                return await acall(PROMPT)

        try:
            await asyncio.gather(*(one() for _ in range(min(in_flight, 32))))  # warm the pool
            start = time.perf_counter()
            answers = await asyncio.gather(*(one() for _ in range(calls)))
            elapsed = time.perf_counter() - start
        finally:
            aclose = getattr(acall, "aclose", None)
            if aclose is not None:
                await aclose()
        if not all(answers):
            raise RuntimeError(f"{subject.name} gave an empty answer")
        return calls / elapsed

    return asyncio.run(run())


def _import_once(module: str) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return float(out.strip().splitlines()[-1])


def compile_packages(*packages: str) -> None:
    """Byte-compile our packages, as ``pip install`` does for a wheel (and did for the
    baseline's packages in site-packages): an editable checkout under
    ``PYTHONDONTWRITEBYTECODE=1`` would otherwise compile our sources on every import."""
    import compileall
    import importlib.util

    for package in packages:
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            for location in spec.submodule_search_locations:
                compileall.compile_dir(location, quiet=1)


def import_pair(ours: str, baseline: str, repeats: int = 9) -> dict[str, float]:
    """Best of ``repeats`` fresh interpreters each, alternating, so noise hits both alike."""
    compile_packages(ours.split(".")[0], "modelslab_core")
    best = {ours: float("inf"), baseline: float("inf")}
    for _ in range(repeats):
        for module in (baseline, ours):
            best[module] = min(best[module], _import_once(module))
    return {"ours_s": best[ours], "baseline_s": best[baseline], "baseline": baseline}
