"""Option values as the engines read them (shared by the user and eBPF engines)."""

from __future__ import annotations

from typing import Any


def size_option(options: dict[str, Any], name: str, default: int) -> int:
    """A size option as given (an int, or text such as "4k"); default when
    unset or not a size (the option parser reports bad sizes itself)."""
    # imported here: the eBPF engine's start-up does not need the option parser
    from pydtrace.options import XoptError, parse_size

    value = options.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, int):
        return value
    try:
        return parse_size(str(value))
    except XoptError:
        return default


def capped_frames(options: dict[str, Any], n: int) -> int:
    """A stack()/ustack() frame count cut to the maxframes option, as dtrace
    does (`-x maxframes=25`: ustack(95) records 25 frames)."""
    cap = options.get("maxframes")
    return min(n, int(cap)) if isinstance(cap, int) and cap > 0 else n
