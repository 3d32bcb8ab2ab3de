"""Run many Python scripts as ``python SCRIPT ARGS`` would, each in a process forked from this one
after the heavy imports (LangChain, LlamaIndex, the package): the docs suite pays for those
imports once instead of once per example and page.

    python -W error::ResourceWarning forked_runs.py < commands

Each line of standard input is a JSON list, ``[name, script, *args]``. Every script runs at once
in a child of its own, as ``__main__``, with its directory first on ``sys.path`` and the same
working directory, environment and warning filters as this process; the child exits as a script
would (``sys.exit`` codes, a traceback and 1 for an exception, the interpreter's own shutdown).
Once standard input ends and every child is done, one JSON line per script is printed:
``{"name", "returncode", "stdout", "stderr"}``.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import tempfile
import traceback
from typing import IO, Any

# The imports every example and page makes; a child finds them loaded.
import langchain.agents  # noqa: F401
import langchain_core.language_models.chat_models  # noqa: F401
import llama_index.core
import llama_index.core.agent.workflow  # noqa: F401

import langchain_modelslab  # noqa: F401
import llama_index_modelslab  # noqa: F401
import modelslab_core.testing._server  # noqa: F401


def _child(script: str, args: list[Any]) -> None:
    """In the forked child: run ``script`` as ``__main__`` and exit as ``python script`` would."""
    sys.argv = [script, *args]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    code = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, int | None):
            print(exc.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    raise SystemExit(code)  # the interpreter's own shutdown: finalizers and their warnings run


def main() -> int:
    children: dict[int, tuple[str, IO[bytes], IO[bytes]]] = {}
    for line in sys.stdin:
        if not line.strip():
            continue
        name, script, *args = json.loads(line)
        # Closed once the child is done (below), not at the end of this block.
        out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # noqa: SIM115
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            for _, *files in [*children.values(), (name, out, err)]:
                for file in files:
                    file.close()  # the parent's: the child keeps only its copies on fds 1 and 2
            _child(script, args)
        children[pid] = (name, out, err)
    while children:
        pid, status = os.wait()
        name, out, err = children.pop(pid)
        captured = []
        for stream in (out, err):
            stream.seek(0)
            captured.append(stream.read().decode("utf-8", "replace"))
            stream.close()
        returncode = os.waitstatus_to_exitcode(status)
        result = {"name": name, "returncode": returncode}
        print(json.dumps(result | {"stdout": captured[0], "stderr": captured[1]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
