"""errinfo: failing system calls with the errno's name and description
(DTraceToolkit's errinfo; errinfo.d)."""

from __future__ import annotations

from pydtrace.tools import options as O
from pydtrace.tools.decode import errno_name, errno_text, syscall_name
from pydtrace.tools.output import Column
from pydtrace.tools.tool import Tool

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# DTraceToolkit's -c counts; the command then goes after the options (or --)
COUNTS = O.Opt("c", "count", "counts", "count failures per process name, call and errno; print them at the end")  # fmt: skip
COMMAND = O.Opt(None, "command", "command", "run CMD and trace it and its children", "CMD", O.command_words)  # fmt: skip


class Errinfo(Tool):
    name = "errinfo"
    script_file = "errinfo.d"
    summary = (
        "Trace failing system calls: process, call, errno, its name and description; "
        "with -c, count them. A command to trace goes after the options."
    )
    options = (O.PID, COMMAND, O.NAME, O.TIME, O.WALLTIME, O.DURATION, O.JSON, COUNTS, *O.TAIL)

    def inline_values(self) -> dict[str, str]:
        return {**super().inline_values(), "COUNTS": "1" if self.o.counts else "0"}

    def columns(self) -> list[Column]:
        return [Column("pid", "PID", 7), Column("comm", "EXEC", 16), Column("syscall", "SYSCALL", 16),
                Column("err", "ERR", 4, right=True), Column("errno", "NAME", 15),
                Column("desc", "DESC")]  # fmt: skip

    def event(self, probe: Any, values: list[Any]) -> dict[str, Any] | None:
        time, pid, comm, func, err = values
        return {"time": time, "pid": pid, "comm": comm, "syscall": syscall_name(func),
                "err": err, "errno": errno_name(err), "desc": errno_text(err)}  # fmt: skip

    def begin(self, out: Any) -> None:
        if not self.o.counts:  # the counts have their header, at the end
            super().begin(out)

    def hook(self, consumer: Any, rec: Any, item: Any) -> bool:
        if self.o.counts and item.action.kind == "printf":
            return True  # the headings of the .d file: ours come with the counts
        return super().hook(consumer, rec, item)

    def aggregations(self, aggs: list[Any], interval: bool) -> None:
        (failures,) = aggs
        rows = sorted(((failures.value(k), k) for k in failures.data), key=lambda r: (-r[0], r[1]))
        if not self.rows.json:
            self.rows.out.write("%-16s %-16s %4s %-15s %8s %s\n" % ("EXEC", "SYSCALL", "ERR", "NAME", "COUNT", "DESC"))  # fmt: skip
        for n, (comm, func, err) in rows:
            if self.rows.json:
                self.rows.record({"comm": comm, "syscall": syscall_name(func), "err": err,
                                  "errno": errno_name(err), "count": n, "desc": errno_text(err)})  # fmt: skip
            else:
                self.rows.out.write("%-16s %-16s %4d %-15s %8d %s\n" % (
                    comm, syscall_name(func), err, errno_name(err), n, errno_text(err)))  # fmt: skip


TOOL = Errinfo
