"""Shared by every fast suite."""

from __future__ import annotations

import pytest

from modelslab_core.flow import reset_gates


@pytest.fixture(autouse=True)
def _fresh_account_gates() -> None:
    """Each test starts with no account gate: what one test's 429s taught the process (a queue
    limit, a pinned ``max_in_flight``) must not hold back the next test's calls."""
    reset_gates()
