"""Run the Python code blocks of a Markdown page against a local ModelsLab server.

    python integration_tests/docs/run_snippets.py README.md

The rules, which the pages follow:

- Every fenced block whose info string is ``python`` (or ``py``) runs; ``bash``, ``text`` and the
  rest never do (shell commands such as ``pip install`` are ``bash`` blocks).
- Every block runs on its own, as a script would (``__name__ == "__main__"``, a fresh namespace):
  a reader who copies one block into a file can run it. A block never uses a name that an earlier
  block defined.
- Top-level ``await`` is refused (a script cannot use it): async code runs under
  ``asyncio.run(...)``, as a reader's script would.
- A block that must not run has ``<!-- no-run: the reason -->`` on the line right before its
  fence. The reason is required; such blocks are meant to be rare.
- A block that defines pytest-style tests (``def test_...(modelslab_server)``) has them called
  right after it runs, with a fresh local server as ``modelslab_server``; a test that asks for
  another fixture is an error, so no test in the docs goes unrun.
- The pages use the live defaults (``ChatModelsLab(model=...)``, key from the environment). Here
  ``MODELSLAB_API_KEY``, ``MODELSLAB_BASE_URL`` and ``MODELSLAB_COMPLETIONS_BASE_URL`` point at a
  local server started for the page, so the blocks run offline unchanged. They run in a fresh
  temporary directory (a block may write files).

Tracebacks name the page and the Markdown line (``README.md:42``). The last line printed on
success is ``snippets: ran N, skipped M, tests T``.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DOC_KEY", "Block", "SnippetError", "extract_blocks", "run_page"]

DOC_KEY = "docs-snippet-key"
RUN_LANGUAGES = frozenset({"python", "py"})
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*?)\s*$")
_NO_RUN = re.compile(r"^\s*<!--\s*no-run\b\s*:?\s*(?P<reason>.*?)\s*-->\s*$")


class SnippetError(ValueError):
    """A page breaks the rules above (an unclosed fence, a no-run marker without a reason)."""


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it starts (1-based line of its first code line)."""

    page: str
    line: int
    language: str
    code: str
    no_run_reason: str | None = None

    @property
    def runs(self) -> bool:
        return self.language in RUN_LANGUAGES and self.no_run_reason is None


def extract_blocks(text: str, page: str = "<page>") -> list[Block]:
    """Every fenced code block of a Markdown text, in order."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence = opening["fence"]
        language = (opening["info"].split() or [""])[0].lower()
        reason = None
        marker = _NO_RUN.match(lines[i - 1]) if i > 0 else None
        if marker is not None:
            reason = marker["reason"]
            if not reason:
                raise SnippetError(f"{page}:{i}: a no-run marker needs a reason")
        end = i + 1
        while end < len(lines):
            closing = _FENCE.match(lines[end])
            if (
                closing is not None
                and closing["fence"][0] == fence[0]
                and len(closing["fence"]) >= len(fence)
                and not closing["info"]
            ):
                break
            end += 1
        else:
            raise SnippetError(f"{page}:{i + 1}: the code block opened here is never closed")
        indent = len(opening["indent"])
        body = [line[indent:] if line[:indent].isspace() else line for line in lines[i + 1 : end]]
        blocks.append(Block(page, i + 2, language, "\n".join(body) + "\n", reason))
        i = end + 1
    return blocks


FIXTURES = frozenset({"modelslab_server"})


def _run_block(block: Block) -> int:
    """Run one block on its own, as a script (and the tests it defines); the number of tests
    run."""
    namespace: dict[str, object] = {"__name__": "__main__"}
    # Padding puts the code on its Markdown line numbers, so tracebacks point into the page.
    source = "\n" * (block.line - 1) + block.code
    try:
        code = compile(source, block.page, "exec")
    except SyntaxError as exc:
        if "await" in str(exc.msg) or "async" in str(exc.msg):
            raise SnippetError(
                f"{block.page}:{exc.lineno}: top-level await does not run in a script; "
                "wrap the code in a function and call it with asyncio.run(...)"
            ) from exc
        raise
    exec(code, namespace)
    tests = [
        value
        for name, value in namespace.items()
        if name.startswith("test_") and inspect.isfunction(value)
    ]
    for test in tests:
        _run_test(block, test)
    return len(tests)


def _run_test(block: Block, test: object) -> None:
    from modelslab_core.testing import LocalModelsLab

    assert inspect.isfunction(test)
    wanted = set(inspect.signature(test).parameters)
    if not wanted <= FIXTURES:
        raise SnippetError(
            f"{block.page}:{block.line}: {test.__name__} asks for {sorted(wanted - FIXTURES)}; "
            f"the runner provides {sorted(FIXTURES)}"
        )
    with LocalModelsLab() as server:
        result = test(**({"modelslab_server": server} if wanted else {}))
        if inspect.iscoroutine(result):
            asyncio.run(result)


def run_page(path: Path) -> tuple[int, int, int]:
    """Run the page's runnable blocks against a local server; (ran, skipped, tests run)."""
    from modelslab_core.testing import LocalModelsLab

    blocks = extract_blocks(path.read_text(encoding="utf-8"), page=str(path))
    ran = skipped = tests = 0
    home = os.getcwd()
    with LocalModelsLab(api_key=DOC_KEY) as server, tempfile.TemporaryDirectory() as scratch:
        os.environ["MODELSLAB_API_KEY"] = DOC_KEY
        os.environ["MODELSLAB_BASE_URL"] = server.base_url
        os.environ["MODELSLAB_COMPLETIONS_BASE_URL"] = server.completions_base_url
        os.chdir(scratch)
        try:
            for block in blocks:
                if block.runs:
                    tests += _run_block(block)
                    ran += 1
                elif block.language in RUN_LANGUAGES:
                    skipped += 1
        finally:
            os.chdir(home)
    return ran, skipped, tests


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: run_snippets.py PAGE.md", file=sys.stderr)
        return 2
    ran, skipped, tests = run_page(Path(argv[0]))
    print(f"\nsnippets: ran {ran}, skipped {skipped}, tests {tests}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
