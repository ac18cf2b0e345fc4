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
