"""Public names loaded on first use (PEP 562), for a package whose import must stay cheap."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection, Sequence
from typing import Any

__all__ = ["lazy_names"]


def lazy_names(
    package: str, public: Collection[str], modules: Sequence[str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``: a name of ``public`` is imported, when
    first asked for, from the first of ``modules`` (relative to ``package``, cheapest first) whose
    ``__all__`` has it, then kept in ``namespace``."""

    def getattr_(name: str) -> Any:
        if name in public:
            for path in modules:
                module = importlib.import_module(path, package)
                if name in module.__all__:
                    value = namespace[name] = getattr(module, name)
                    return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def dir_() -> list[str]:
        return sorted(set(namespace) | set(public))

    return getattr_, dir_
