"""The local ModelsLab server in its own process, so the clients measured do not share its GIL."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from types import TracebackType

API_KEY = "bench-key"


@dataclass
class ServerProcess:
    base_url: str = ""
    completions_base_url: str = ""
    url: str = ""
    #: More command-line options for the server (``--stream-delay 0.05``, ...).
    args: tuple[str, ...] = ()
    _proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> ServerProcess:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "modelslab_core.testing", "--api-key", API_KEY, *self.args],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            line = line.strip()
            if line == "READY":
                break
            name, _, value = line.partition(": ")
            if name == "chat":
                self.base_url = value
            elif name == "completions":
                self.completions_base_url = value
        else:
            raise RuntimeError("the local server exited before it was ready")
        self.url = self.base_url.split("/api/")[0]
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
            if self._proc.stdout is not None:
                self._proc.stdout.close()
