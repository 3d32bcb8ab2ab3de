"""More than 1,024 open files (``select()`` cannot watch a descriptor above 1,023): in a process
with its soft ``RLIMIT_NOFILE`` raised to the hard limit and 1,100 files open, every call is
answered and a keep-alive connection carries several calls in a row."""

from __future__ import annotations

from typing import Any

from modelslab_core.testing import LocalModelsLab

SCRIPT = """
import json, os, resource, socket
from modelslab_core.testing import LocalModelsLab

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
files = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
probe = socket.socket()
report = {"hard": hard, "probe_fd": probe.fileno(), "surfaces": {}}
probe.close()
with LocalModelsLab(api_key=net.KEY) as server:
    for surface in net.SURFACES[:4]:
        server.reset_stats()
        texts = [f"{surface} call {i}" for i in range(4)]
        answers = net.Ask()(surface, server.base_url, texts)
        report["surfaces"][surface] = {
            "right": answers == texts,
            "connections": server.connections_opened,
            "requests": server.request_count,
        }
for fd in files:
    os.close(fd)
print(json.dumps(report))
"""


def test_calls_with_more_than_1024_open_files(python: Any, load_conftest: str) -> None:
    report = python(load_conftest + SCRIPT, {})
    assert report["hard"] >= 1200  # the limit could really be raised past 1,024
    assert report["probe_fd"] > 1024  # so every socket opened after it is above select()'s
    surfaces = report["surfaces"]
    assert set(surfaces) == {"core:chat", "core:chat_stream", "core:achat", "core:achat_stream"}
    for surface, seen in surfaces.items():
        assert seen["right"] and seen["requests"] == 4, surface
    # One connection carries the four calls (none is opened when the previous surface's
    # connection is still in the pool).
    for surface in surfaces:
        assert surfaces[surface]["connections"] <= 1, surface


def test_sync_stream_read_to_the_end_keeps_its_connection(server: LocalModelsLab, ask: Any) -> None:
    """Sync streams read to ``[DONE]`` hand their connection back to the pool, as async streams
    and non-streamed calls do."""
    texts = [f"stream {i}" for i in range(4)]
    assert ask("core:chat_stream", server.base_url, texts) == texts
    assert server.connections_opened == 1
