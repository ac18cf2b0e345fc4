"""syscount: system calls counted per call or per process, in strace -c's
columns (syscount.d)."""

from __future__ import annotations

import time as _time

from pydtrace.tools import options as O
from pydtrace.tools.decode import syscall_name
from pydtrace.tools.tool import Tool, every

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PER_PROCESS = O.Opt("P", "process", "per_process", "count per process (pid and name), not per call")
SORTS = ("time", "calls", "errors", "name")


def sort_key(text: str) -> str:
    if text not in SORTS:
        raise ValueError(f"not a column (one of {', '.join(SORTS)})")
    return text


SORT = O.Opt("S", "sort", "sort", "sort by time (the default), calls, errors or name", "COLUMN", sort_key, "time")  # fmt: skip

RULE = "------ ----------- ----------- --------- --------- ----------------\n"


class Syscount(Tool):
    name = "syscount"
    script_file = "syscount.d"
    summary = (
        "Count system calls per call (or per process with -P): calls, errors and time, "
        "in strace -c's columns; every interval seconds, count times, or at the end."
    )
    options = (O.PID, O.COMMAND, O.NAME, O.DURATION, O.JSON, PER_PROCESS, SORT, *O.TAIL)
    positional = "interval"

    def inline_values(self) -> dict[str, str]:
        return {**super().inline_values(), "PER_PROCESS": "1" if self.o.per_process else "0"}

    def extra_clauses(self) -> str:
        text = super().extra_clauses()
        if self.o.interval is None:
            return text
        aggs = "@pcalls, @perrors, @ptime" if self.o.per_process else "@calls, @errors, @time"
        fmt = "%-6d %-15s %@9d %@9d %@12d\\n" if self.o.per_process else "%-22s %@9d %@9d %@12d\\n"
        names = aggs.split(", ")
        body = (
            '\tprintf("%-22s %9s %9s %12s\\n", "SYSCALL", "CALLS", "ERRORS", "TIME(ns)");\n'
            f'\tprinta("{fmt}", {aggs});\n' + "".join(f"\ttrunc({a});\n" for a in names)
        )
        return text + every(self.o.interval, self.o.count, "the counts since the last", body)

    def begin(self, out: Any) -> None:
        """No header before the counts: each table has its own."""

    def aggregations(self, aggs: list[Any], interval: bool) -> None:
        # every interval gets its table, an idle one too; the end's only if
        # counts came in after the last interval's
        if interval or aggs[0].data or self.o.interval is None:
            if aggs[0].spec.name.startswith("@p") == bool(self.o.per_process):
                self.table(aggs, interval)

    def table(self, aggs: list[Any], interval: bool) -> None:
        calls, errors, times = aggs
        rows = []
        for key in calls.data:
            name = f"{key[0]} {key[1]}" if self.o.per_process else syscall_name(key[0])
            rows.append((name, calls.value(key), errors.value(key) if key in errors.data else 0,
                         times.value(key) if key in times.data else 0))  # fmt: skip
        order = {"time": lambda r: (-r[3], r[0]), "calls": lambda r: (-r[1], r[0]),
                 "errors": lambda r: (-r[2], r[0]), "name": lambda r: r[0]}  # fmt: skip
        rows.sort(key=order[self.o.sort])
        total_ns = sum(r[3] for r in rows)
        now = _time.strftime("%H:%M:%S")
        if self.rows.json:
            for name, n, errs, ns in rows:
                key = "process" if self.o.per_process else "syscall"
                obj: dict[str, Any] = {key: name, "calls": n, "errors": errs, "ns": ns}
                if interval:
                    obj["interval_end"] = now
                self.rows.record(obj)
            return
        w = self.rows.out.write
        if interval:
            w(f"[{now}]\n")
        w("%6.6s %11.11s %11.11s %9.9s %9.9s %s\n"
          % ("% time", "seconds", "usecs/call", "calls", "errors", "process" if self.o.per_process else "syscall"))  # fmt: skip
        w(RULE)
        for name, n, errs, ns in rows:
            w(_line(ns, total_ns, n, errs, name))
        w(RULE)
        w(_line(total_ns, total_ns, sum(r[1] for r in rows), sum(r[2] for r in rows), "total"))
        if interval:
            w("\n")


def _line(ns: int, total_ns: int, calls: int, errors: int, name: str) -> str:
    pct = 100.0 * ns / total_ns if total_ns else 0.0
    usecs = ns // 1000 // calls if calls else 0
    errs = str(errors) if errors else ""
    return "%6.2f %11.6f %11d %9d %9s %s\n" % (pct, ns / 1e9, usecs, calls, errs, name)


TOOL = Syscount
