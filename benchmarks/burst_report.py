"""The burst benchmark's table, chart (answers over time) and page section."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .burst import Run

BEGIN, END = "<!-- burst:start -->", "<!-- burst:end -->"


def _goal(run: Run) -> str:
    if run.target is None:
        return "anchor" if not run.ours else "beside"
    goal = f">= {run.target:.0%}"
    if run.max_rate_limited is not None:
        goal += f", <= {run.max_rate_limited} 429s"
    return f"{goal} {'met' if run.met else 'MISSED'}"


def table(runs: list[Run]) -> str:
    lines = [
        "| scenario | subject | answered | failed | 429s | server peak | time | % of Q/L "
        "| target |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        name = f"**{run.subject}**" if run.ours else run.subject
        lines.append(
            f"| {run.scenario} | {name} | {run.answered}/{run.calls} | {run.failed} | "
            f"{run.rate_limited} | {run.max_queued} | {run.elapsed_s:.2f} s | "
            f"{run.efficiency:.1%} | {_goal(run)} |"
        )
    return "\n".join(lines)


def _panel(ax: Any, chosen: list[Run], title: str, latency: float) -> None:
    if not chosen:
        return
    horizon = max((r.times[-1] for r in chosen if r.times), default=1.0)
    queue = chosen[0].queue
    ideal = queue / latency
    ax.plot(
        [0, horizon],
        [0, ideal * horizon],
        color="#c33",
        linestyle="--",
        linewidth=1,
        label=f"the queue's most: {ideal:g} answers/s",
    )
    for run in chosen:
        ys = list(range(1, len(run.times) + 1))
        shared = run.redis or run.processes == 1
        ax.step(
            [0.0, *run.times],
            [0, *ys],
            where="post",
            linestyle="-" if run.ours and shared else ":",
            linewidth=2 if run.ours and shared else 1.5,
            label=f"{run.subject}{' + Redis' if run.redis else ''}: {run.answered}/{run.calls}",
        )
    ax.set_ylim(0, max(r.calls for r in chosen) * 1.05)
    ax.set_xlim(0, horizon * 1.02)
    ax.set_title(title)
    ax.set_xlabel("seconds since the burst")
    ax.set_ylabel("answers received")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)


def chart(runs: list[Run], out: Path) -> Path:
    """Answers over time: one process at Q=5 (every subject), and P processes sharing one key
    with and without the gate on Redis (and the anchors)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .burst import LATENCY

    single = [r for r in runs if r.processes == 1 and r.queue == 5 and "names Q" in r.scenario]
    fleet = [r for r in runs if r.processes > 1]
    panels = [p for p in (single, fleet) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(7.5 * len(panels), 5), squeeze=False)
    for ax, chosen in zip(axes[0], panels, strict=True):
        if chosen is single:
            title = f"{chosen[0].calls} calls at once, one process, Q=5, {LATENCY:g} s per answer"
        else:
            title = f"{chosen[0].calls} calls at once from P processes sharing one key, Q=5"
        _panel(ax, chosen, title, LATENCY)
    fig.suptitle("Answers over time at ModelsLab's account queue (retry_after 30 s, defaults)")
    fig.tight_layout()
    path = out / "burst.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write(runs: list[Run], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "burst.json").write_text(json.dumps([asdict(r) for r in runs], indent=1) + "\n")
    chart(runs, out)


def update_doc(doc: Path, runs: list[Run], chart_path: Path) -> None:
    """Rewrite the burst section of ``doc`` (between its markers) with this run's table."""
    text = doc.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        return
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    relative = os.path.relpath(chart_path, doc.parent)
    body = (
        f"\nMeasured {when} on this machine, all subjects at their defaults, each process with"
        f" its own interpreter.\n\n{table(runs)}\n\n![Answers over time]({relative})\n"
    )
    doc.write_text(head + BEGIN + body + END + tail, encoding="utf-8")
