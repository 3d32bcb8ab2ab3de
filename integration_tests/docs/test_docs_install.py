"""Install instructions that work today. The package is not on PyPI yet, so every page's first
``pip install`` is one that works now (from a clone, ``".[extra]"``, or from the git URL,
``"modelslab-integrations[extra] @ git+<repository-url>"``), and the index form
``pip install "modelslab-integrations[extra]"`` only appears as what will work once the package
is published. The ImportError hints name packages that are on PyPI. The repository's address
is the one placeholder ``<repository-url>`` everywhere.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
HINTS = [
    REPO / "langchain_modelslab" / "__init__.py",
    REPO / "llama_index_modelslab" / "__init__.py",
]
PIP_INSTALL = re.compile(r"pip install [^`\n]*")
FROM_THE_INDEX = re.compile(r"""modelslab-integrations\[[\w,-]+\]["']?(?!\s*@)""")
FUTURE = re.compile(r"published|PyPI")


def install_lines(text: str) -> list[tuple[str, str]]:
    """Each ``pip install`` command with the whole line it is on."""
    return [(m.group(), line) for line in text.splitlines() for m in PIP_INSTALL.finditer(line)]


def works_today(command: str) -> bool:
    return "modelslab-integrations" not in command or "@ git+" in command


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_a_page_leads_with_an_install_that_works_today(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    commands = install_lines(text)
    ours = [(c, line) for c, line in commands if "modelslab-integrations" in c or ".[" in c]
    if ours:
        first, _ = ours[0]
        assert works_today(first) or '".[' in first, f"{page.name} leads with {first!r}"
    for command, line in commands:
        if FROM_THE_INDEX.search(command):
            assert FUTURE.search(line), f"{page.name}: {command!r} is shown as working today"
    for address in re.findall(r"git clone (\S+)|git\+(\S+?)[\"'`\s]", text):
        assert "<repository-url>" in "".join(address), f"{page.name}: {address}"


@pytest.mark.parametrize("module", HINTS, ids=lambda p: p.parent.name)
def test_the_import_error_hint_installs_from_pypi(module: Path) -> None:
    commands = install_lines(module.read_text(encoding="utf-8"))
    assert commands
    assert all(works_today(command) for command, _ in commands), commands


def test_the_check_tells_the_forms_apart() -> None:
    assert FROM_THE_INDEX.search('pip install "modelslab-integrations[langchain]"')
    assert not FROM_THE_INDEX.search(
        'pip install "modelslab-integrations[langchain] @ git+<repository-url>"'
    )
    assert works_today('pip install ".[all]"')
    assert not works_today('pip install "modelslab-integrations[all]"')
