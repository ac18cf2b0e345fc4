"""pydtrace: DTrace for Linux in pure Python.

from pydtrace import trace
r = trace('BEGIN { @c["hello"] = count(); exit(0); }')
r.aggregations   # {'@c': {('hello',): 1}}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["trace", "Session", "Program", "Result", "CompileError", "__version__"]

if TYPE_CHECKING:
    from pydtrace.lang.errors import CompileError
    from pydtrace.session import Program, Result, Session, trace


def __getattr__(name: str) -> Any:
    # Imported lazily so that `pydtrace` starts fast.
    if name == "CompileError":
        from pydtrace.lang.errors import CompileError

        return CompileError
    if name in ("trace", "Session", "Program", "Result"):
        from pydtrace import session

        return getattr(session, name)
    raise AttributeError(name)
