"""What installing the package brings along: one version, a pytest plugin that costs nothing until
its fixtures are used, a pytest configuration that needs no optional plugin, and the licence."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import langchain_modelslab
import llama_index_modelslab
import modelslab_core

REPO = Path(__file__).resolve().parents[2]


def _python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_one_version_from_the_metadata_in_all_three_packages() -> None:
    version = importlib.metadata.version("modelslab-integrations")
    assert modelslab_core.__version__ == version
    assert langchain_modelslab.__version__ == version
    assert llama_index_modelslab.__version__ == version
    for package in (modelslab_core, langchain_modelslab, llama_index_modelslab):
        assert "__version__" in package.__all__


def test_pytest_plugin_imports_nothing_heavy_at_start_up() -> None:
    """pytest imports the plugin in every project that installs us: no server, httpx or pydantic
    until a test asks for a fixture."""
    loaded = _python(
        "import sys, modelslab_core.testing.pytest_plugin\n"
        "heavy = ('httpx', 'pydantic', 'aiohttp', 'modelslab_core.testing._server',\n"
        "         'modelslab_core.client')\n"
        "print(sorted(name for name in heavy if name in sys.modules))"
    )
    assert loaded == "[]"


def test_lazy_package_names_resolve_to_the_real_objects() -> None:
    from modelslab_core.errors import MissingAPIKeyError
    from modelslab_core.testing import LocalModelsLab
    from modelslab_core.testing._server import LocalModelsLab as ServerClass

    assert modelslab_core.MissingAPIKeyError is MissingAPIKeyError
    assert LocalModelsLab is ServerClass
    assert all(hasattr(modelslab_core, name) for name in modelslab_core.__all__)
    assert set(modelslab_core.__all__) <= set(dir(modelslab_core))


def test_the_pytest_configuration_needs_no_optional_plugin_and_fails_a_hang(
    tmp_path: Path,
) -> None:
    """pytest starts with the project's configuration without pytest-benchmark (so no option of
    it, such as ``--benchmark-disable``, belongs there), every test has a default timeout, and a
    test that hangs (a deadlock) fails at its timeout instead of stopping the run."""
    hang = tmp_path / "test_hang.py"
    hang.write_text(
        "import threading\n"
        "import pytest\n\n"
        "@pytest.mark.timeout(0.5)\n"
        "def test_deadlock():\n"
        "    threading.Event().wait()\n\n"
        "def test_after_it():\n"
        "    pass\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-p", "no:benchmark", "-p", "no:cacheprovider"),
            *("-c", str(REPO / "pyproject.toml"), "--rootdir", str(tmp_path), str(hang)),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output  # tests failed, pytest itself ran
    assert "timeout: 60.0s" in output, output  # the configured default for every test
    assert "1 failed, 1 passed" in output, output
    assert "Timeout" in output, output


def test_the_mit_licence_ships_with_the_package() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    assert (REPO / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    assert project["authors"] and project["urls"] and project["classifiers"]
    assert project["requires-python"] == ">=3.11"


def test_make_bench_writes_into_an_untracked_folder() -> None:
    from benchmarks.__main__ import OUT, ROOT

    assert OUT == ROOT / ".bench"
    ignored = (REPO / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert ".bench/" in ignored


#: Documents our users cannot see: the project's internal notes ("seed 000", shared/...).
_PRIVATE_CITATION = re.compile(r"\bseeds? \d{3}\b|seed 000's|shared/modelslab-api\.md", re.I)


def test_comments_and_docs_cite_only_public_documents() -> None:
    roots = ["modelslab_core", "langchain_modelslab", "llama_index_modelslab", "docs", "examples"]
    files = [REPO / "README.md"]
    for root in roots:
        files += [p for p in (REPO / root).rglob("*") if p.suffix in (".py", ".md")]
    cited = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if _PRIVATE_CITATION.search(line)
    ]
    assert not cited, "\n".join(cited)
