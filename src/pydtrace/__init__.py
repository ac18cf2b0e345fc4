"""pydtrace: DTrace for Linux in pure Python.

    import pydtrace
    r = pydtrace.trace('BEGIN { @c["hello"] = count(); exit(0); }')
    r.aggregations   # {'@c': {('hello',): 1}}
    for event in pydtrace.stream('syscall::write:entry { trace(arg2); }', command="ls"):
        print(event)  # pydtrace.Record, pydtrace.Snapshot

docs/api.md is the guide.
"""

from __future__ import annotations

TYPE_CHECKING = False

__version__ = "0.1.0"
__all__ = [
    "trace",
    "stream",
    "Stream",
    "Session",
    "Program",
    "Result",
    "CompileError",
    "OptionError",
    "Record",
    "Probe",
    "Snapshot",
    "Histogram",
    "Bucket",
    "Average",
    "StdDev",
    "__version__",
]

if TYPE_CHECKING:
    from typing import Any

    from pydtrace.events import Average, Bucket, Histogram, Probe, Record, Snapshot, StdDev
    from pydtrace.lang.errors import CompileError
    from pydtrace.options import OptionError
    from pydtrace.session import Program, Result, Session, Stream, stream, trace

_EVENTS = ("Record", "Probe", "Snapshot", "Histogram", "Bucket", "Average", "StdDev")


def __getattr__(name: str) -> Any:
    # Imported lazily so that `pydtrace` starts fast.
    if name == "CompileError":
        from pydtrace.lang.errors import CompileError

        return CompileError
    if name == "OptionError":
        from pydtrace.options import OptionError

        return OptionError
    if name in ("trace", "stream", "Stream", "Session", "Program", "Result"):
        from pydtrace import session

        return getattr(session, name)
    if name in _EVENTS:
        from pydtrace import events

        return getattr(events, name)
    raise AttributeError(f"module 'pydtrace' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(__all__)
