"""execsnoop: every exec, with its arguments, parent and result (execsnoop.d)."""

from __future__ import annotations

from pydtrace.tools import options as O
from pydtrace.tools.decode import errno_name
from pydtrace.tools.output import Column, shell_line
from pydtrace.tools.tool import Tool

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAXARGS = 20  # the arguments execsnoop.d reads (self->a0 .. self->a19)


class Execsnoop(Tool):
    name = "execsnoop"
    script_file = "execsnoop.d"
    summary = (
        "Trace execve() and execveat(): the new program's name, pid, parent pid, result "
        f"(0 or -errno) and arguments (the first {MAXARGS})."
    )
    options = (*O.SNOOP, O.FAILED, *O.TAIL)

    def inline_values(self) -> dict[str, str]:
        return {**super().inline_values(), "FAILED_ONLY": "1" if self.o.failed else "0"}

    def columns(self) -> list[Column]:
        return [Column("comm", "PCOMM", 16), Column("pid", "PID", 7), Column("ppid", "PPID", 7),
                Column("ret", "RET", 3, right=True), Column("argline", "ARGS")]  # fmt: skip

    def event(self, probe: Any, values: list[Any]) -> dict[str, Any] | None:
        time, comm, pid, ppid, ret, argc, path = values[:7]
        args = list(values[7 : 7 + min(argc, MAXARGS)])
        more = values[7 + MAXARGS] == "..."
        ev = {"time": time, "comm": comm, "pid": pid, "ppid": ppid, "ret": ret, "path": path,
              "args": args, "truncated": more}  # fmt: skip
        if ret < 0:
            ev["errno"] = errno_name(-ret)
        if not self.rows.json:  # the ARGS column: as a shell would read them back
            ev["argline"] = shell_line(args) + (" ..." if more else "")
        return ev


TOOL = Execsnoop
