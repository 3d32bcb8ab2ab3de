"""Shared by every suite: how much of the large matrices and of the fuzzing ``make test`` runs.

- ``@pytest.mark.covering(n)``: a parametrized test (fixture parameters included) runs a sample
  of its cases in which every combination of ``n`` parameter values occurs: ``covering(2)``
  (pairwise) checks every value and every interaction of two; ``covering(1)`` every value once
  (for a matrix whose rows and columns act independently, such as one retry policy behind
  every surface). The sample is chosen greedily in collection order (the same cases every
  run). ``--full-matrix`` (``make test-load``) runs every case.
- Hypothesis: the ``fast`` profile (the default: 30 examples, derandomized, so a run is
  reproducible) and ``thorough`` (``--hypothesis-profile=thorough``, ``make test-load``: 400
  random examples).
"""

from __future__ import annotations

from itertools import combinations

import pytest
from hypothesis import settings

#: ``pytester`` runs pytest inside a test (the pytest plugin's own tests).
pytest_plugins = ["pytester"]

settings.register_profile("fast", max_examples=30, derandomize=True)
settings.register_profile("thorough", max_examples=400)
settings.load_profile("fast")  # the hypothesis plugin loads --hypothesis-profile after this

Values = tuple[tuple[str, str], ...]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--full-matrix",
        action="store_true",
        help="run every case of the tests marked covering (default: a covering sample)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "covering(n): run a sample of the cases holding every combination of n parameter values "
        "(every case with --full-matrix)",
    )


def _combinations(item: pytest.Item, strength: int) -> frozenset[Values]:
    callspec = getattr(item, "callspec", None)
    params = callspec.params if callspec is not None else {}
    values = sorted((name, repr(value)) for name, value in params.items())
    return frozenset(combinations(values, strength))


def covering_sample(items: list[pytest.Item], strength: int) -> list[pytest.Item]:
    """A subset of ``items`` (the cases of one test) in which every combination of ``strength``
    parameter values found in ``items`` occurs: greedily, the case holding the most combinations
    not yet covered, the earliest on a tie."""
    held = {item: _combinations(item, strength) for item in items}
    missing = set().union(*held.values())
    kept: list[pytest.Item] = []
    while missing:
        best = max(items, key=lambda item: len(held[item] & missing))
        kept.append(best)
        missing -= held[best]
    return kept or items[:1]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("full_matrix"):
        return
    groups: dict[tuple[str, str], list[pytest.Item]] = {}
    strengths: dict[tuple[str, str], int] = {}
    for item in items:
        marker = item.get_closest_marker("covering")
        if marker is not None:
            key = (str(item.path), getattr(item, "originalname", item.name))
            groups.setdefault(key, []).append(item)
            strengths[key] = int(marker.args[0]) if marker.args else 2
    kept = {
        item for key, group in groups.items() for item in covering_sample(group, strengths[key])
    }
    dropped = [item for group in groups.values() for item in group if item not in kept]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        left = set(dropped)
        items[:] = [item for item in items if item not in left]
