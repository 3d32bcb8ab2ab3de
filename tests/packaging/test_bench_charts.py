"""The benchmark chart: ours and the anchors readable (the raw-httpx floor left out), each bar
labelled with its value, each target drawn inside the axes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks import report

SUBJECTS = {
    "raw httpx": {"ms_per_call": 0.05, "stream_chunks_per_s": 400_000, "async_calls_per_s": 9000},
    "ChatOpenAI": {"ms_per_call": 1.0, "stream_chunks_per_s": 10_000, "async_calls_per_s": 100},
    "ChatModelsLab": {"ms_per_call": 0.4, "stream_chunks_per_s": 40_000, "async_calls_per_s": 300},
}
TARGETS = [
    ("ms_per_call", "ChatModelsLab", "ChatOpenAI", "<=", 0.5),
    ("stream_chunks_per_s", "ChatModelsLab", "ChatOpenAI", ">=", 3.0),
    ("async_calls_per_s", "ChatModelsLab", "ChatOpenAI", ">=", 5.0),  # 500: beyond every bar
]


def test_chart_leaves_out_the_floor_labels_values_and_draws_targets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from matplotlib.figure import Figure

    saved: list[Any] = []
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **k: saved.append(fig))
    monkeypatch.setattr("matplotlib.pyplot.close", lambda fig=None: None)

    report.charts({"subjects": SUBJECTS}, [], tmp_path, targets=TARGETS)

    [figure] = saved
    axes = figure.get_axes()
    assert len(axes) == 3
    for ax, (metric, *_rest, target) in zip(axes, TARGETS, strict=True):
        names = [label.get_text() for label in ax.get_yticklabels()]
        assert names == ["ChatOpenAI", "ChatModelsLab"]  # no raw-httpx floor
        labels = {t.get_text() for t in ax.texts}
        values = [SUBJECTS[n][metric] for n in names]
        assert {report._fmt(v) for v in values} <= labels  # every bar carries its value
        goal = SUBJECTS["ChatOpenAI"][metric] * target
        dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
        assert [line.get_xdata()[0] for line in dashed] == [pytest.approx(goal)]
        assert ax.get_xlim()[1] > goal  # the target is inside the axes
