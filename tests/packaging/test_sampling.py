"""The project's pytest configuration (conftest.py): ``@pytest.mark.covering(n)`` runs a sample of
a matrix in which every combination of n parameter values occurs, the same sample every run, and
``--full-matrix`` runs every case."""

from __future__ import annotations

from itertools import combinations, product
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLACEMENTS, ECHOES, PATHS = ("header", "body"), ("e1", "e2", "e3", "e4"), ("p1", "p2", "p3", "p4")
MATRIX = f"""
import pytest

@pytest.fixture(params={PLACEMENTS!r})
def placement(request):
    return request.param

@pytest.mark.covering(STRENGTH)
@pytest.mark.parametrize("path", {PATHS!r})
@pytest.mark.parametrize("echo", {ECHOES!r})
def test_matrix(placement, echo, path):
    pass
"""


def run_matrix(pytester: pytest.Pytester, strength: int, *args: str) -> list[tuple[str, ...]]:
    """The cases pytest selects, each as (placement, echo, path)."""
    pytester.makeconftest((REPO / "conftest.py").read_text(encoding="utf-8"))
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(MATRIX.replace("STRENGTH", str(strength)))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--collect-only", "-q", *args)
    ids = [line.partition("[")[2].rstrip("]") for line in result.outlines if "::" in line]
    order = {
        value: axis for axis, values in enumerate((PLACEMENTS, ECHOES, PATHS)) for value in values
    }
    return [tuple(sorted(case.split("-"), key=order.__getitem__)) for case in ids]


@pytest.mark.parametrize("strength", [1, 2])
def test_the_sample_holds_every_combination_of_n_values(
    pytester: pytest.Pytester, strength: int
) -> None:
    cases = run_matrix(pytester, strength)
    everything = list(product(PLACEMENTS, ECHOES, PATHS))
    assert 0 < len(cases) < len(everything)
    wanted = {c for case in everything for c in combinations(enumerate(case), strength)}
    for combination in wanted:
        assert any(all(case[i] == v for i, v in combination) for case in cases), combination
    assert run_matrix(pytester, strength) == cases  # the same sample every run


def test_full_matrix_runs_every_case(pytester: pytest.Pytester) -> None:
    cases = run_matrix(pytester, 2, "--full-matrix")
    assert sorted(cases) == sorted(product(PLACEMENTS, ECHOES, PATHS))
