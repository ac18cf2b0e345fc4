"""opensnoop: who opens which files, and what comes back (opensnoop.d)."""

from __future__ import annotations

from pydtrace.tools import options as O
from pydtrace.tools.decode import errno_name, open_flags
from pydtrace.tools.output import Column
from pydtrace.tools.tool import Tool

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FLAGS = O.Opt("f", "flags", "flags", "print the open flags (O_RDONLY|O_CLOEXEC ...)")


class Opensnoop(Tool):
    name = "opensnoop"
    script_file = "opensnoop.d"
    summary = "Trace open(), openat(), openat2() and creat(): pid, command, fd or errno, path."
    options = (*O.SNOOP, O.FAILED, FLAGS, *O.TAIL)

    def inline_values(self) -> dict[str, str]:
        return {**super().inline_values(), "FAILED_ONLY": "1" if self.o.failed else "0"}

    def columns(self) -> list[Column]:
        cols = [Column("pid", "PID", 7), Column("comm", "COMM", 16),
                Column("fd", "FD", 4, right=True), Column("err", "ERR", 3, right=True)]  # fmt: skip
        if self.o.flags:
            cols.append(Column("flags", "FLAGS", 24))
        return [*cols, Column("path", "PATH")]

    def event(self, probe: Any, values: list[Any]) -> dict[str, Any] | None:
        time, pid, comm, fd, err, flags, path = values
        ev = {"time": time, "pid": pid, "comm": comm, "fd": fd, "err": err,
              "flags": open_flags(flags), "path": path}  # fmt: skip
        if err:
            ev["errno"] = errno_name(err)
        return ev


TOOL = Opensnoop
