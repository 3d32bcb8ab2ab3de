"""Shared by the docs tests: run every example and every documentation page at once.

Each example and each page runs in a process of its own (as a user would run it), all of a
module's started together on first use so that the module takes about as long as its slowest
script. Those processes are forked from one that made the heavy imports once
(``forked_runs.py``): the imports cost one interpreter, not one per script. With
``MODELSLAB_API_KEY`` and the base-URL variables removed, the examples start their own local
server and the pages get one from ``run_snippets.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
RUNNER = Path(__file__).with_name("run_snippets.py")
FORKED = Path(__file__).with_name("forked_runs.py")
#: The README and every page in docs/: a new page is run without being listed anywhere.
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SCRIPTS = sorted(p for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))
TIMEOUT = 120
_TARGET_VARIABLES = ("MODELSLAB_API_KEY", "MODELSLAB_BASE_URL", "MODELSLAB_COMPLETIONS_BASE_URL")


@dataclass(frozen=True)
class Run:
    """What a script printed, and how it ended."""

    command: str
    returncode: int
    stdout: str
    stderr: str

    def explain(self) -> str:
        return (
            f"{self.command} exited with {self.returncode}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


def offline_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _TARGET_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def run_python(*args: str, env: dict[str, str] | None = None) -> Run:
    """``python -W error::ResourceWarning ARGS`` from the repository root."""
    command = [sys.executable, "-W", "error::ResourceWarning", *args]
    done = subprocess.run(
        command,
        cwd=REPO,
        env=env if env is not None else offline_env(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=TIMEOUT,
        check=False,
    )
    return Run(_label(args), done.returncode, done.stdout, done.stderr)


def _label(args: tuple[str, ...] | list[str]) -> str:
    return "python " + " ".join(Path(a).name if a.endswith((".py", ".md")) else a for a in args)


def run_forked(commands: dict[str, tuple[str, ...]]) -> dict[str, Run]:
    """Run each command (``name: (script, *args)``) as ``python -W error::ResourceWarning
    script args`` would, each in a process forked after the heavy imports (forked_runs.py)."""
    lines = "".join(json.dumps([name, *args]) + "\n" for name, args in commands.items())
    done = subprocess.run(
        [sys.executable, "-W", "error::ResourceWarning", str(FORKED)],
        input=lines,
        cwd=REPO,
        env=offline_env(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=TIMEOUT * 2,
        check=False,
    )
    runs: dict[str, Run] = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            found = json.loads(line)
            command = _label(commands[found["name"]])
            runs[found["name"]] = Run(
                command, found["returncode"], found["stdout"], found["stderr"]
            )
    for name, args in commands.items():  # the runner itself failed before this one ran
        runs.setdefault(name, Run(_label(args), done.returncode, done.stdout, done.stderr))
    return runs


class Runs:
    """Runs of examples (by file name) and pages (by path from the repository root), started in
    the background; :meth:`get` waits for one."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self._pool = pool
        self._futures: dict[str, Future[Run]] = {}
        self._forked: dict[str, Future[dict[str, Run]]] = {}
        self._commands = {
            page.relative_to(REPO).as_posix(): (str(RUNNER), str(page)) for page in PAGES
        }
        self._commands.update({script.name: (str(script),) for script in SCRIPTS})

    @property
    def names(self) -> set[str]:
        return set(self._commands)

    def start(self, name: str) -> None:
        if name not in self._futures and name not in self._forked:
            self._futures[name] = self._pool.submit(run_python, *self._commands[name])

    def start_forked(self, names: list[str]) -> None:
        """Start these runs together, each forked from one process that made the heavy
        imports once (run_forked)."""
        commands = {name: self._commands[name] for name in names}
        future = self._pool.submit(run_forked, commands)
        self._forked.update(dict.fromkeys(names, future))

    def get(self, name: str) -> Run:
        if name in self._forked:
            return self._forked[name].result()[name]
        self.start(name)
        return self._futures[name].result()


@pytest.fixture(scope="module")
def offline_runs(request: pytest.FixtureRequest) -> Iterator[Runs]:
    """Starts, at once, the runs that the selected tests of this module will ask for (their
    ``name``): per module, so that a pytest-xdist worker starts only the runs of the modules it
    was given."""
    with ThreadPoolExecutor(max_workers=max(4, os.cpu_count() or 1)) as pool:
        runs = Runs(pool)
        wanted: list[str] = []
        for item in request.session.items:
            if item.path != request.node.path:
                continue
            callspec = getattr(item, "callspec", None)
            name = callspec.params.get("name") if callspec is not None else None
            if name in runs.names and "offline_runs" in getattr(item, "fixturenames", ()):
                wanted.append(name)
        runs.start_forked(list(dict.fromkeys(wanted)))
        yield runs


@pytest.fixture(scope="session")
def python_runner() -> Callable[..., Run]:
    """:func:`run_python`, for tests that run a script themselves."""
    return run_python
