"""Compile errors with dtrace's tags and locations.

dtrace prints `failed to compile script F: [D_TAG] line N: message`; the tag
shows only under `-xerrtags`. The CLI adds the prefix; DError carries the
parts.  CompileError is the whole message, as a program's compilation (or
the enabling of its probes) fails for the user: what pydtrace.CompileError
names.
"""

from __future__ import annotations


class DError(Exception):
    """A compile-time error in a D program."""

    def __init__(
        self,
        tag: str,
        message: str,
        line: int = 0,
        file: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.tag = tag
        self.message = message
        self.line = line
        self.file = file
        self.hint = hint  # a line of advice after dtrace's message, when there is one

    def located(self, errtags: bool = False) -> str:
        """`[D_TAG] line N: message` as dtrace shows it after the script name."""
        where = ""
        if self.line:
            where = f'"{self.file}", line {self.line}: ' if self.file else f"line {self.line}: "
        return (f"[{self.tag}] " if errtags else "") + where + self.message


class CompileError(Exception):
    """A D program failed to compile, or its probes could not be enabled.

    str() and `message` are dtrace's full message (without the program's
    name); `tag` is dtrace's error tag (D_SYNTAX ...; "" when there is none);
    `line` the program's line the error is at (0 when unknown); `hint` advice
    the front end prints on a line of its own (or None)."""

    def __init__(self, message: str, tag: str = "", hint: str | None = None, line: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.tag = tag
        self.hint = hint
        self.line = line
