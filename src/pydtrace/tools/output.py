"""The one output path of the tools: rows under a header, or JSON lines.

A tool hands each event as a dict; Rows prints the columns it was given (a
header first, BCC's layout: fixed widths, the last column unpadded) or, with
-j, the whole dict as one JSON object per line. The -t/-T time column comes
from the event's `time` (walltimestamp, ns since the epoch). Writes go to
the consumer's output, whose failed write ends the run as dtrace's does.
"""

from __future__ import annotations

import time as _time

from pydtrace.lang.dataclass import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    width: int = 0  # 0: as wide as the value (the last column)
    right: bool = False

    def cell(self, value: Any) -> str:
        text = str(value)
        if not self.width:
            return text
        return text.rjust(self.width) if self.right else text.ljust(self.width)

    def head(self) -> str:
        return self.cell(self.title)


REL_TIME = Column("rel_time", "TIME(s)", 12)
WALL_TIME = Column("wall_time", "TIME", 8)


class Rows:
    """Events as columns or JSON lines. stamp: None, "rel" (-t) or "wall" (-T)."""

    def __init__(self, columns: list[Column], json_lines: bool = False, stamp: str | None = None):
        self.columns = ([REL_TIME] if stamp == "rel" else [WALL_TIME] if stamp == "wall" else []) + list(columns)  # fmt: skip
        self.json = json_lines
        self.stamp = stamp
        self.out: Any = None  # set by the hook from the consumer before each write
        self.first_time: int | None = None
        self.header_done = False

    def header(self) -> None:
        if self.json or self.header_done:
            return
        self.header_done = True
        self.out.write(" ".join(c.head() for c in self.columns).rstrip() + "\n")
        self.out.flush()  # before a command's own output

    def _stamp(self, event: dict[str, Any]) -> None:
        t = event.get("time")
        if t is None:
            return
        if self.first_time is None:
            self.first_time = t
        if self.stamp == "rel":
            event["rel_time"] = "%.6f" % ((t - self.first_time) / 1e9)
        elif self.stamp == "wall":
            event["wall_time"] = _time.strftime("%H:%M:%S", _time.localtime(t / 1e9))

    def row(self, event: dict[str, Any]) -> None:
        self._stamp(event)
        if self.json:
            event.pop("rel_time", None)
            event.pop("wall_time", None)
            self.out.write(_json_line(event))
            return
        self.header()
        cells = [c.cell(event.get(c.key, "")) for c in self.columns]
        self.out.write(" ".join(cells).rstrip() + "\n")

    def text(self, text: str) -> None:
        """A line that is no row (a summary's heading), never in JSON."""
        if not self.json:
            self.out.write(text)

    def record(self, obj: dict[str, Any]) -> None:
        """A JSON object that is no event row (a summary's line)."""
        self.out.write(_json_line(obj))


# what a POSIX shell reads as itself, unquoted (shlex.quote's set; shlex
# itself imports re, 3-5 ms of execsnoop's start)
_SHELL_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-")


def shell_line(words: list[str]) -> str:
    """The words as a shell command line that gives them back (shlex.join's text)."""
    out = []
    for w in words:
        if not w:
            out.append("''")
        elif all(c in _SHELL_SAFE for c in w):
            out.append(w)
        else:
            out.append("'" + w.replace("'", "'\"'\"'") + "'")
    return " ".join(out)


def _json_line(obj: dict[str, Any]) -> str:
    import json  # -j only: json's import is a tool's start-up otherwise

    return json.dumps(obj, ensure_ascii=False) + "\n"
