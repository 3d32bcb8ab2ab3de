"""Many requests at once: LangChain's ``abatch`` with ``max_concurrency``, and the account gate
that every model and adapter client of one API key shares.

ModelsLab limits the requests an account may have queued (5, 10 or 15 by plan; more get HTTP 429).
The gate learns that limit from the 429s with no setting; ``max_in_flight=N`` pins it at N for the
whole account (every model and client of the key), holding request N+1 until one finishes.

Run: ``python examples/concurrency.py`` (offline against a local server without a key).
"""

from __future__ import annotations

import asyncio
import time

from _target import Target, modelslab_target

from langchain_modelslab import ChatModelsLab
from modelslab_core import AsyncModelsLabClient
from modelslab_core.testing import Reply

MODEL = "meta-llama-3-8B-instruct"
QUESTIONS = [f"Question number {i}" for i in range(1, 21)]
CAP = 5


def report(label: str, answers: list[str], started: float, target: Target) -> None:
    line = f"{label}: {len(answers)} answers in {time.perf_counter() - started:.2f} s"
    if target.server is not None:
        line += f", at most {target.server.max_in_flight_seen} in flight at the server"
        target.server.reset_stats()
    print(line)
    print(f"{label}: first answer: {answers[0]}")


async def main(target: Target) -> None:
    if target.server is not None:
        # The local server answers in microseconds; make each answer take 50 ms, as a (fast)
        # real model would, so that requests overlap.
        target.server.set_fault_rate(1.0, [Reply.slow(0.05)])

    # LangChain's own knob: at most CAP requests from this one batch.
    llm = ChatModelsLab(model=MODEL, api_key=target.api_key, base_url=target.base_url)
    started = time.perf_counter()
    messages = await llm.abatch(QUESTIONS, config={"max_concurrency": CAP})
    report("langchain abatch", [str(m.content) for m in messages], started, target)

    # The model's cap: at most CAP requests at once from every call sharing this model.
    capped = ChatModelsLab(
        model=MODEL, api_key=target.api_key, base_url=target.base_url, max_in_flight=CAP
    )
    started = time.perf_counter()
    batches = await asyncio.gather(capped.abatch(QUESTIONS[:10]), capped.abatch(QUESTIONS[10:]))
    answers = [str(m.content) for batch in batches for m in batch]
    report("langchain max_in_flight", answers, started, target)

    client = AsyncModelsLabClient(
        api_key=target.api_key, base_url=target.base_url, max_in_flight=CAP
    )
    started = time.perf_counter()
    completions = await asyncio.gather(
        *(
            client.chat({"model": MODEL, "messages": [{"role": "user", "content": question}]})
            for question in QUESTIONS
        )
    )
    answers = [c.choices[0].message.content or "" for c in completions]
    report("core max_in_flight", answers, started, target)


if __name__ == "__main__":
    with modelslab_target() as target:
        print(f"-- talking to {target.label}")
        asyncio.run(main(target))
