"""rwsnoop: every read and write, with the file each names (rwsnoop.d)."""

from __future__ import annotations

from pydtrace.tools import options as O
from pydtrace.tools.decode import errno_name
from pydtrace.tools.output import Column
from pydtrace.tools.tool import Tool

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Rwsnoop(Tool):
    name = "rwsnoop"
    script_file = "rwsnoop.d"
    summary = (
        "Trace read(), write() and their p/v/v2 forms: pid, command, R or W, call, "
        "fd, bytes (or -1 and the errno) and the file (path, pipe or socket)."
    )
    options = (*O.SNOOP, O.FAILED, *O.TAIL)

    def inline_values(self) -> dict[str, str]:
        return {**super().inline_values(), "FAILED_ONLY": "1" if self.o.failed else "0"}

    def columns(self) -> list[Column]:
        return [Column("pid", "PID", 7), Column("comm", "COMM", 16), Column("dir", "D", 1),
                Column("call", "CALL", 8), Column("fd", "FD", 4, right=True),
                Column("bytes", "BYTES", 8, right=True), Column("err", "ERR", 3, right=True),
                Column("path", "PATH")]  # fmt: skip

    def event(self, probe: Any, values: list[Any]) -> dict[str, Any] | None:
        time, pid, comm, d, call, fd, nbytes, err, path = values
        ev = {"time": time, "pid": pid, "comm": comm, "dir": d, "call": call, "fd": fd,
              "bytes": nbytes, "err": err, "path": path}  # fmt: skip
        if err:
            ev["errno"] = errno_name(err)
        return ev


TOOL = Rwsnoop
