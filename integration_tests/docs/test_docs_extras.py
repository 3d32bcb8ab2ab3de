"""Every import in the examples and in the pages' Python blocks that run is installed by the
extra a reader of that page installs: ``[langchain]`` for LangChain code, ``[llama-index]`` for
LlamaIndex code, ``[all]`` for code using both, the package alone for the rest. The check reads
the extras in pyproject.toml and what each installed distribution requires in turn, so a module
that only the dev tools bring along fails. Pytest, in the pages about testing, is the reader's
own test runner; a block marked no-run (the code a guide migrates away from) is left out.
"""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import re
import sys
import tomllib
from functools import cache
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from integration_tests.docs.run_snippets import extract_blocks

REPO = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
EXAMPLES = sorted((REPO / "examples").glob("*.py"))
OURS = {"modelslab_core", "langchain_modelslab", "llama_index_modelslab"}
LOCAL = {path.stem for path in EXAMPLES} | {"integration_tests", "tests", "benchmarks"}
READERS_OWN = {"pytest"}


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", Requirement(requirement).name).lower()


@cache
def installed_by(extra: str | None) -> frozenset[str]:
    """The distributions ``pip install "modelslab-integrations[extra]"`` brings (normalized
    names): the dependencies and the extra's, then what they require, recursively."""
    wanted = [*PROJECT["dependencies"], *PROJECT["optional-dependencies"].get(extra or "", [])]
    seen: set[str] = set()
    todo = [_name(r) for r in wanted]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(_name(text))
    return frozenset(seen)


def imported_modules(code: str) -> set[str]:
    """The top-level modules a piece of Python imports (absolute imports only)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"__future__"} - LOCAL - READERS_OWN


def extra_for(modules: set[str]) -> str | None:
    """The extra a reader of code importing ``modules`` installs."""
    langchain = any(m.startswith("langchain") for m in modules)
    llama_index = any(m.startswith("llama_index") for m in modules)
    if langchain and llama_index:
        return "all"
    return "langchain" if langchain else "llama-index" if llama_index else None


def sources() -> list[tuple[str, str]]:
    found = [(path.relative_to(REPO).as_posix(), path.read_text("utf-8")) for path in EXAMPLES]
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        blocks = extract_blocks(text, page.name)
        code = [b.code for b in blocks if b.language == "python" and b.no_run_reason is None]
        found.append((page.relative_to(REPO).as_posix(), "\n".join(code)))
    return found


@pytest.mark.parametrize(("name", "code"), sources(), ids=[name for name, _ in sources()])
def test_every_import_comes_with_the_extra_a_reader_installs(name: str, code: str) -> None:
    modules = imported_modules(code)
    extra = extra_for(modules)
    distributions = metadata.packages_distributions()
    brought = installed_by(extra) | {"modelslab-integrations"}
    missing = {
        module: sorted(_name(d) for d in distributions.get(module, [module]))
        for module in sorted(modules - OURS)
        if not {_name(d) for d in distributions.get(module, [module])} & brought
    }
    label = f'pip install "modelslab-integrations[{extra}]"' if extra else "the package alone"
    assert not missing, f"{name}: {label} does not install {missing}"


def test_the_check_sees_a_module_no_extra_brings() -> None:
    assert extra_for({"langchain_core", "langchain"}) == "langchain"
    assert "langchain-core" in installed_by("langchain")
    assert "llama-index-core" in installed_by("all")
    assert "respx" not in installed_by("all")  # a dev tool only
    assert imported_modules("import respx\nfrom . import x\nimport os\n") == {"respx"}
