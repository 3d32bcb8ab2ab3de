"""The table printed by ``make bench`` and its charts (``.bench/``; ``docs/benchmarks/`` for
``make bench-docs``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import network

LABELS = {
    "ms_per_call": "ms per call (lower is better)",
    "stream_chunks_per_s": "stream chunks/s",
    "async_calls_per_s": "async calls/s, 64 in flight",
}


def verdicts(
    results: dict[str, Any],
    targets: list[tuple[str, str, str, str, float]],
    imports: list[tuple[str, str, float]],
) -> list[dict[str, Any]]:
    out = []
    subjects = results["subjects"]
    for metric, ours, anchor, op, target in targets:
        ratio = subjects[ours][metric] / subjects[anchor][metric]
        met = ratio <= target if op == "<=" else ratio >= target
        out.append(
            {
                "what": f"{ours} / {anchor}: {LABELS[metric]}",
                "ratio": ratio,
                "target": f"{op} {target}",
                "met": met,
            }
        )
    for ours, _, target in imports:
        entry = results["imports"][ours]
        ratio = entry["ours_s"] / entry["baseline_s"]
        out.append(
            {
                "what": f"import {ours} / import {entry['baseline']}",
                "ratio": ratio,
                "target": f"<= {target}",
                "met": ratio <= target,
            }
        )
    return out


def table(results: dict[str, Any], verdicts: list[dict[str, Any]]) -> str:
    names = list(results["subjects"])
    lines = [
        "",
        "| client | ms per call | stream chunks/s | async calls/s (64 in flight) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name in names:
        row = results["subjects"][name]
        lines.append(
            f"| {name} | {row['ms_per_call']:.2f} | {row['stream_chunks_per_s']:,.0f} "
            f"| {row['async_calls_per_s']:,.0f} |"
        )
    lines += ["", "| import | seconds | baseline seconds |", "| --- | ---: | ---: |"]
    for ours, entry in results["imports"].items():
        lines.append(
            f"| {ours} vs {entry['baseline']} | {entry['ours_s']:.3f} | {entry['baseline_s']:.3f} |"
        )
    lines += ["", "| target | ratio | wanted | met |", "| --- | ---: | --- | --- |"]
    for v in verdicts:
        lines.append(
            f"| {v['what']} | {v['ratio']:.2f} | {v['target']} | {'yes' if v['met'] else 'NO'} |"
        )
    return "\n".join(lines)


#: The floor: raw httpx with no framework around it. Charted with the others, it set the scale and
#: left ours and the anchors as slivers; it stays in the printed table and results.json.
FLOOR = "raw httpx"


def charts(
    results: dict[str, Any],
    verdicts: list[dict[str, Any]],
    out: Path,
    targets: Sequence[tuple[str, str, str, str, float]] = (),
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in results["subjects"] if n != FLOOR]
    fig, axes = plt.subplots(1, 3, figsize=(16, 0.9 * len(names) + 2.5))
    for ax, metric in zip(axes, LABELS, strict=True):
        values = [results["subjects"][n][metric] for n in names]
        colors = ["#2a7" if results_is_ours(n) else "#999" for n in names]
        bars = ax.barh(names, values, color=colors)
        ax.bar_label(bars, labels=[_fmt(v) for v in values], padding=3, fontsize=8)
        right = max(values)
        for metric_t, ours, anchor, op, target in targets:
            if metric_t != metric or ours not in names or anchor not in names:
                continue
            goal = results["subjects"][anchor][metric] * target
            right = max(right, goal)
            row = names.index(ours)
            ax.plot([goal, goal], [row - 0.45, row + 0.45], color="#c33", linestyle="--")
            ax.annotate(
                f"target {op} {target:g}x {anchor}",
                (goal, row - 0.45),
                fontsize=7,
                color="#c33",
                ha="center",
                va="bottom",
            )
        ax.set_title(LABELS[metric])
        ax.set_xlim(0, right * 1.3)  # room for the value labels and every target line
        ax.invert_yaxis()
    fig.suptitle(
        "ModelsLab integrations (green) vs anchors (grey), local server on loopback; "
        "red dashes: the targets; raw httpx (no framework, the floor) is in the table only"
    )
    fig.tight_layout()
    fig.savefig(out / "benchmarks.png", dpi=100)
    plt.close(fig)

    scaling = results.get("scaling")
    if not scaling:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
    for name, values in scaling["stream"].items():
        left.plot(scaling["lengths"], values, marker="o", label=name)
    left.set_xscale("log")
    left.set_xlabel("reply length (chunks)")
    left.set_yscale("log")  # raw httpx (the floor) is far above the rest
    left.set_ylabel("chunks/s (log scale)")
    left.set_title("stream throughput by reply length")
    for name, values in scaling["async"].items():
        right.plot(scaling["in_flight"], values, marker="o", label=name)
    right.set_xscale("log", base=2)
    right.set_xlabel("requests in flight")
    right.set_yscale("log")
    right.set_ylabel("calls/s (log scale)")
    right.set_title("async throughput by requests in flight")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "scaling.png", dpi=100)
    plt.close(fig)


def update_doc(doc: Path, results: dict[str, Any], verdicts: list[dict[str, Any]]) -> None:
    """Replace the latest-results section of ``docs/benchmarks.md`` with this run's table."""
    start, end = "<!-- results:start -->", "<!-- results:end -->"
    text = doc.read_text()
    if start not in text or end not in text:
        return
    machine = results["machine"]
    body = (
        f"Run {results['when']} on {machine['platform']} ({machine['processor']}), "
        f"Python {machine['python']}.\n" + table(results, verdicts) + "\n"
    )
    if results.get("scaling"):
        body += "\n" + scaling_table(results["scaling"]) + "\n"
    extra = network.markdown(results)
    if extra:
        body += "\n" + extra + "\n"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    doc.write_text(f"{head}{start}\n{body}{end}{tail}")


def scaling_table(scaling: dict[str, Any]) -> str:
    lines = [
        "Stream chunks/s by reply length (chunks):",
        "",
        "| client | " + " | ".join(str(n) for n in scaling["lengths"]) + " |",
        "| --- |" + " ---: |" * len(scaling["lengths"]),
    ]
    for name, values in scaling["stream"].items():
        lines.append(f"| {name} | " + " | ".join(f"{v:,.0f}" for v in values) + " |")
    lines += [
        "",
        "Async calls/s by requests in flight:",
        "",
        "| client | " + " | ".join(str(n) for n in scaling["in_flight"]) + " |",
        "| --- |" + " ---: |" * len(scaling["in_flight"]),
    ]
    for name, values in scaling["async"].items():
        lines.append(f"| {name} | " + " | ".join(f"{v:,.0f}" for v in values) + " |")
    return "\n".join(lines)


def _fmt(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:,.0f}"


def results_is_ours(name: str) -> bool:
    return "ModelsLab" in name
