"""Compile errors with dtrace's tags and locations.

dtrace prints `failed to compile script F: [D_TAG] line N: message`; the tag
shows only under `-xerrtags`. The CLI adds the prefix; this class carries the
parts.
"""

from __future__ import annotations


class DError(Exception):
    """A compile-time error in a D program."""

    def __init__(self, tag: str, message: str, line: int = 0, file: str | None = None) -> None:
        super().__init__(message)
        self.tag = tag
        self.message = message
        self.line = line
        self.file = file

    def located(self, errtags: bool = False) -> str:
        """`[D_TAG] line N: message` as dtrace shows it after the script name."""
        where = ""
        if self.line:
            where = f'"{self.file}", line {self.line}: ' if self.file else f"line {self.line}: "
        return (f"[{self.tag}] " if errtags else "") + where + self.message
