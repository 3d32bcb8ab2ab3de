"""The documentation site: the strict build fails on a page left out of the nav, and the API
reference shows every field of the models (the client settings with their types, defaults and
descriptions, declared once in ClientSettings)."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from langchain_modelslab import ChatModelsLab
from langchain_modelslab import ModelsLabLLM as LCCompletions
from llama_index_modelslab import ModelsLabLLM
from modelslab_core import ClientSettings

REPO = Path(__file__).resolve().parents[2]
#: Fields a reader never sets (LangChain's and LlamaIndex's bookkeeping, inherited as is).
FRAMEWORK_OWN = {
    "name", "cache", "verbose", "callbacks", "tags", "metadata", "custom_get_token_ids",
    "callback_manager", "rate_limiter", "disable_streaming", "output_version", "profile",
    "system_prompt", "messages_to_prompt", "completion_to_prompt", "output_parser",
    "pydantic_program_mode", "query_wrapper_prompt",
}  # fmt: skip


def build(tmp_path: Path, extra_page: str | None = None) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` of a copy of docs/ (plus ``extra_page``) into tmp_path/site."""
    docs = tmp_path / "docs"
    shutil.copytree(REPO / "docs", docs)
    if extra_page:
        (docs / extra_page).write_text("# Left out\n")
    config: dict[str, Any] = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    config["docs_dir"] = str(docs)
    config["site_dir"] = str(tmp_path / "site")
    for plugin in config["plugins"]:
        if isinstance(plugin, dict) and "mkdocstrings" in plugin:
            plugin["mkdocstrings"]["handlers"]["python"]["paths"] = [str(REPO)]
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(tmp_path / "mkdocs.yml")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=REPO,
    )


def page_text(tmp_path: Path, name: str) -> str:
    raw = (tmp_path / "site" / "reference" / name / "index.html").read_text()
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", raw)))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp_path = tmp_path_factory.mktemp("docs")
    run = build(tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    return tmp_path


def test_a_page_left_out_of_the_nav_fails_the_strict_build(tmp_path: Path) -> None:
    run = build(tmp_path, extra_page="stray.md")
    assert run.returncode != 0
    assert "stray.md" in run.stderr


def test_every_page_in_docs_is_in_the_nav() -> None:
    config = (REPO / "mkdocs.yml").read_text()
    for page in (REPO / "docs").glob("*.md"):
        assert page.name in config, page.name


def test_the_client_settings_are_in_the_reference_with_type_default_and_doc(site: Path) -> None:
    text = page_text(site, "modelslab_core")
    for name, field in ClientSettings.model_fields.items():
        assert f"{name} pydantic-field" in text, name
        assert field.description and field.description in text, name


@pytest.mark.parametrize(
    ("page", "cls"),
    [
        ("langchain_modelslab", ChatModelsLab),
        ("langchain_modelslab", LCCompletions),
        ("llama_index_modelslab", ModelsLabLLM),
    ],
)
def test_every_field_of_each_model_is_in_its_reference_page(
    site: Path, page: str, cls: type[Any]
) -> None:
    text = page_text(site, page)
    own = set(cls.model_fields) - FRAMEWORK_OWN - set(ClientSettings.model_fields)
    missing = sorted(name for name in own if f"{name} :" not in text)
    assert not missing
    assert "ClientSettings" in text  # where the client settings are documented, once
