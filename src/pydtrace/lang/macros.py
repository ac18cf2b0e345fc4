"""Macro variables and operands: `$1`, `$$1`, `$target`, `$pid`, ...

The lexer asks this object for the text or value behind each reference and
records which operands were used, so the CLI can reject unused ones the way
dtrace does.
"""

from __future__ import annotations

import os

from .errors import DError

# Macro variables dtrace always defines (their value is 0 when not supplied).
MACRO_NAMES = (
    "egid",
    "euid",
    "gid",
    "pgid",
    "pid",
    "ppid",
    "projid",
    "sid",
    "target",
    "taskid",
    "uid",
)


def process_values() -> dict[str, int]:
    """This process's values of the macro variables it defines itself
    ($pid, $ppid, $uid, ...; $target and $1.. come from the command)."""
    return {"pid": os.getpid(), "ppid": os.getppid(), "uid": os.getuid(), "gid": os.getgid(),
            "euid": os.geteuid(), "egid": os.getegid(), "pgid": os.getpgid(0), "sid": os.getsid(0)}  # fmt: skip


class Macros:
    """The operands ($0 = script or program name, $1.. = the rest) and macro variables."""

    def __init__(self, args: list[str], values: dict[str, int], defaultargs: bool = False) -> None:
        self.args = list(args)
        self.values = dict(values)
        self.defaultargs = defaultargs
        self.referenced: set[int] = set()
        self.variables: set[str] = set()  # the macro variables read ($pid...)

    def operand(self, n: int, ref: str, line: int) -> str | None:
        """The text of operand n, or None when missing but defaultargs allows it.

        `ref` is the reference as written (`$3`, `$$3`), for the error message.
        """
        if n < len(self.args):
            self.referenced.add(n)
            return self.args[n]
        if self.defaultargs:
            return None
        raise DError("D_MACRO_UNDEF", f"macro argument {ref} is not defined", line)

    def variable(self, name: str) -> int | None:
        """The value of macro variable `name` ($target, $pid, ...), None if unknown."""
        if name in self.values:
            self.variables.add(name)
            return int(self.values[name])
        if name in MACRO_NAMES:
            self.variables.add(name)
            return 0
        return None
