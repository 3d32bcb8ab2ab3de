"""The README and every page in docs/: each Python block runs against a local server
(``run_snippets.py`` holds the rules), the README links every page, and relative links resolve.

The runner's own rules are tested here too, on small pages made up for the purpose, so that a
block that fails, or a test in the docs that fails, makes the page fail.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

#: These tests wait for scripts that run in the background, many at once (each may take up to
#: conftest.TIMEOUT): longer than the suite's default timeout.
pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
PAGE_NAMES = [page.relative_to(REPO).as_posix() for page in PAGES]
#: Blocks marked no-run are meant to be rare.
MAX_NO_RUN = 3


def _load_runner() -> ModuleType:
    path = Path(__file__).with_name("run_snippets.py")
    spec = importlib.util.spec_from_file_location("modelslab_docs_run_snippets", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


runner = _load_runner()


def runnable(page: Path) -> int:
    blocks = runner.extract_blocks(page.read_text(encoding="utf-8"), page=str(page))
    return sum(1 for block in blocks if block.runs)


@pytest.mark.parametrize("name", PAGE_NAMES)
def test_page_snippets_run(offline_runs: Any, name: str) -> None:
    run = offline_runs.get(name)
    assert run.returncode == 0, run.explain()
    summary = run.stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"snippets: ran (\d+), skipped (\d+), tests (\d+)", summary)
    assert match is not None, run.explain()
    assert int(match[1]) == runnable(REPO / name), run.explain()
    assert "ResourceWarning" not in run.stderr, run.explain()


def test_pages_have_python_and_few_exceptions() -> None:
    no_run = []
    for page in PAGES:
        blocks = runner.extract_blocks(page.read_text(encoding="utf-8"), page=page.name)
        if page.parent.name == "docs" and page.stem in {"core", "langchain", "llama_index"}:
            assert runnable(page) >= 5, f"{page.name} shows too little code"
        no_run += [block for block in blocks if block.no_run_reason is not None]
    assert len(no_run) <= MAX_NO_RUN, [(b.page, b.line, b.no_run_reason) for b in no_run]


def test_readme_links_every_page() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for page in sorted((REPO / "docs").glob("*.md")):
        assert f"](docs/{page.name})" in readme, f"README.md does not link docs/{page.name}"


_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("name", PAGE_NAMES)
def test_relative_links_resolve(name: str) -> None:
    page = REPO / name
    for target in _LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        assert (page.parent / target).exists(), f"{name} links {target}, which does not exist"


# --- the runner's rules -------------------------------------------------------------------------

PAGE = """\
# A page

```bash
pip install something
```

```python
x = 1
```

Text.

<!-- no-run: it would need a real key -->
```python
raise SystemExit("not run")
```

````markdown
```python
this is only shown inside another block
```
````

  ```py
  y = x + 1
  ```
"""


def test_extract_blocks_reads_languages_markers_and_lines() -> None:
    blocks = runner.extract_blocks(PAGE, page="page.md")
    assert [(b.language, b.line, b.runs) for b in blocks] == [
        ("bash", 4, False),
        ("python", 8, True),
        ("python", 15, False),
        ("markdown", 19, False),
        ("py", 25, True),
    ]
    assert blocks[2].no_run_reason == "it would need a real key"
    assert blocks[4].code == "y = x + 1\n"
    assert "```python" in blocks[3].code


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<!-- no-run -->\n```python\nx = 1\n```\n", "needs a reason"),
        ("```python\nx = 1\n", "never closed"),
    ],
)
def test_extract_blocks_refuses_broken_pages(text: str, message: str) -> None:
    with pytest.raises(runner.SnippetError, match=message):
        runner.extract_blocks(text, page="page.md")


BROKEN = {
    "a failing block": (
        "# Title\n\n```python\nx = 1\n```\n\n```python\nassert x == 2, 'x is not 2'\n```\n",
        'page.md", line 8',
    ),
    "a failing test": (
        "```python\ndef test_it(modelslab_server):\n    assert modelslab_server.url == 'no'\n```\n",
        'page.md", line 3',
    ),
    "a test asking for an unknown fixture": (
        "```python\ndef test_it(tmp_path):\n    pass\n```\n",
        "asks for ['tmp_path']",
    ),
    # Each block runs alone, as a reader's script would: nothing is borrowed from a block above.
    "a block using a name an earlier block defined": (
        "```python\nfrom modelslab_core.testing import Reply\n```\n\n"
        "```python\nprint(Reply.text('x'))\n```\n",
        "NameError: name 'Reply' is not defined",
    ),
    "a top-level await": (
        "```python\nimport asyncio\n\nawait asyncio.sleep(0)\n```\n",
        "page.md:4: top-level await does not run in a script",
    ),
    "a top-level async for": (
        "```python\nasync for x in y:\n    pass\n```\n",
        "top-level await does not run in a script",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_runner_fails_a_broken_page(
    python_runner: Callable[..., Any], tmp_path: Path, case: str
) -> None:
    text, where = BROKEN[case]
    page = tmp_path / "page.md"
    page.write_text(text, encoding="utf-8")
    run = python_runner(str(Path(__file__).with_name("run_snippets.py")), str(page))
    assert run.returncode != 0, run.explain()
    assert where in run.stderr, run.explain()


def test_runner_runs_each_block_alone_with_the_live_defaults(
    python_runner: Callable[..., Any], tmp_path: Path
) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```python\n"
        "from langchain_modelslab import ChatModelsLab\n\n"
        "llm = ChatModelsLab(model='meta-llama-3-8B-instruct')\n"
        "print('sync:', llm.invoke('from the docs').content, __name__)\n"
        "```\n\n"
        "```python\n"
        "import asyncio\n\n"
        "from langchain_modelslab import ChatModelsLab\n\n"
        "print('fresh:', 'llm' in globals())\n"
        "print('async:', asyncio.run(ChatModelsLab().ainvoke('awaited')).content)\n"
        "```\n\n"
        "```python\n"
        "from langchain_modelslab import ChatModelsLab\n"
        "from modelslab_core.testing import Reply\n\n\n"
        "def test_echo(modelslab_server):\n"
        "    modelslab_server.enqueue(Reply.text('scripted'))\n"
        "    print('test:', ChatModelsLab(api_key='k', base_url=modelslab_server.base_url)"
        ".invoke('x').content)\n"
        "```\n",
        encoding="utf-8",
    )
    run = python_runner(str(Path(__file__).with_name("run_snippets.py")), str(page))
    assert run.returncode == 0, run.explain()
    assert run.stdout.splitlines() == [
        "sync: from the docs __main__",
        "fresh: False",
        "async: awaited",
        "test: scripted",
        "",
        "snippets: ran 3, skipped 0, tests 1",
    ]
