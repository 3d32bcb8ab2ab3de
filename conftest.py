"""Shared by every suite: how much of the large matrices and of the fuzzing ``make test`` runs.

- ``@pytest.mark.pairwise``: a parametrized test (fixture parameters included) runs a pairwise
  sample of its cases: every pair of values of any two of its parameters meets in at least one
  case, so every value, and every interaction of two, is still checked. The sample is chosen
  greedily in collection order (the same cases every run). ``--full-matrix`` (``make
  test-load``) runs every case.
- Hypothesis: the ``fast`` profile (the default: 30 examples, derandomized, so a run is
  reproducible) and ``thorough`` (``--hypothesis-profile=thorough``, ``make test-load``: 400
  random examples).
"""

from __future__ import annotations

from itertools import combinations

import pytest
from hypothesis import settings

settings.register_profile("fast", max_examples=30, derandomize=True)
settings.register_profile("thorough", max_examples=400)
settings.load_profile("fast")  # the hypothesis plugin loads --hypothesis-profile after this

Pair = tuple[tuple[str, str], tuple[str, str]]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--full-matrix",
        action="store_true",
        help="run every case of the tests marked pairwise (default: a pairwise sample)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "pairwise: run a pairwise sample of the cases unless --full-matrix is given",
    )


def _pairs(item: pytest.Item) -> frozenset[Pair]:
    callspec = getattr(item, "callspec", None)
    params = callspec.params if callspec is not None else {}
    values = sorted((name, repr(value)) for name, value in params.items())
    return frozenset(combinations(values, 2))


def pairwise_sample(items: list[pytest.Item]) -> list[pytest.Item]:
    """A subset of ``items`` (the cases of one test) in which every pair of parameter values
    found in ``items`` occurs: greedily, the case covering the most pairs not yet covered, the
    earliest on a tie."""
    pairs = {item: _pairs(item) for item in items}
    missing = set().union(*pairs.values())
    kept: list[pytest.Item] = []
    while missing:
        best = max(items, key=lambda item: len(pairs[item] & missing))
        kept.append(best)
        missing -= pairs[best]
    return kept or items[:1]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("full_matrix"):
        return
    groups: dict[tuple[str, str], list[pytest.Item]] = {}
    for item in items:
        if item.get_closest_marker("pairwise") is not None:
            key = (str(item.path), getattr(item, "originalname", item.name))
            groups.setdefault(key, []).append(item)
    kept = {item for group in groups.values() for item in pairwise_sample(group)}
    dropped = [item for group in groups.values() for item in group if item not in kept]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        left = set(dropped)
        items[:] = [item for item in items if item not in left]
