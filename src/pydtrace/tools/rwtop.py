"""rwtop: bytes read and written per process (and file), every interval, as
DTraceToolkit's rwtop and BCC's filetop (rwtop.d)."""

from __future__ import annotations

import time as _time

from pydtrace.tools import options as O
from pydtrace.tools.tool import Tool, every

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CLEAR = "\033[H\033[2J"  # cursor home, erase the screen (what clear(1) prints on a VT100)
SORTS = ("all", "reads", "writes", "rbytes", "wbytes")


def sort_key(text: str) -> str:
    if text not in SORTS:
        raise ValueError(f"not a column (one of {', '.join(SORTS)})")
    return text


NOCLEAR = O.Opt("C", "noclear", "noclear", "do not clear the screen before each interval")
PER_FILE = O.Opt("f", "files", "per_file", "count per file too (FILE: a path, pipe or socket)")
ROWS = O.Opt("r", "maxrows", "maxrows", "print at most ROWS rows (default 20)", "ROWS", O.positive_int, 20)  # fmt: skip
SORT = O.Opt("s", "sort", "sort", "sort by all (bytes read and written, the default), reads, writes, rbytes or wbytes", "COLUMN", sort_key, "all")  # fmt: skip


class Rwtop(Tool):
    name = "rwtop"
    script_file = "rwtop.d"
    summary = (
        "Bytes read and written per process (with -f, per file): reads, writes and KB "
        "every interval seconds (default 1), count times; the screen cleared (-C: not)."
    )
    options = (O.PID, O.COMMAND, O.NAME, O.DURATION, O.JSON, NOCLEAR, PER_FILE, ROWS, SORT,
               *O.TAIL)  # fmt: skip
    positional = "interval"

    def __init__(self, o: O.Parsed) -> None:
        super().__init__(o)
        self.interval = o.interval if o.interval is not None else 1.0

    def inline_values(self) -> dict[str, str]:
        return {**super().inline_values(), "PER_FILE": "1" if self.o.per_file else "0"}

    def extra_clauses(self) -> str:
        text = super().extra_clauses()
        body = (
            '\tprintf("%-7s %-16s %1s %10s %12s %s\\n", "PID", "COMM", "D", "CALLS", "BYTES", "FILE");\n'
            '\tprinta("%-7d %-16s %1s %@10d %@12d %s\\n", @calls, @bytes);\n'
            "\ttrunc(@calls);\n\ttrunc(@bytes);\n"
        )
        return text + every(self.interval, self.o.count, "the counts since the last", body)

    def begin(self, out: Any) -> None:
        """No header before the counts: each table has its own."""

    def aggregations(self, aggs: list[Any], interval: bool) -> None:
        if interval or aggs[0].data:  # the end: only counts that came after the last interval
            self.table(*aggs)

    def table(self, calls: Any, nbytes: Any) -> None:
        rows: dict[tuple[int, str, str], list[int]] = {}
        for key in calls.data:
            pid, comm, d, path = key
            r = rows.setdefault((pid, comm, path), [0, 0, 0, 0])  # reads, writes, rbytes, wbytes
            w = d == "W"
            r[w] += calls.value(key)
            r[2 + w] += nbytes.value(key) if key in nbytes.data else 0
        order = {"all": lambda r: -(r[1][2] + r[1][3]), "reads": lambda r: -r[1][0],
                 "writes": lambda r: -r[1][1], "rbytes": lambda r: -r[1][2],
                 "wbytes": lambda r: -r[1][3]}[self.o.sort]  # fmt: skip
        ranked = sorted(rows.items(), key=lambda r: (order(r), r[0]))[: self.o.maxrows]
        now = _time.strftime("%H:%M:%S")
        if self.rows.json:
            for (pid, comm, path), (reads, writes, rb, wb) in ranked:
                obj: dict[str, Any] = {"interval_end": now, "pid": pid, "comm": comm,
                                       "reads": reads, "writes": writes, "rbytes": rb, "wbytes": wb}  # fmt: skip
                if self.o.per_file:
                    obj["file"] = path
                self.rows.record(obj)
            return
        w = self.rows.out.write
        if not self.o.noclear:
            w(CLEAR)
        w(f"{now} loadavg: {_loadavg()}\n\n")
        head = "%-7s %-16s %6s %6s %8s %8s" % ("PID", "COMM", "READS", "WRITES", "R_KB", "W_KB")
        w(head + (" FILE\n" if self.o.per_file else "\n"))
        for (pid, comm, path), (reads, writes, rb, wb) in ranked:
            line = "%-7d %-16s %6d %6d %8d %8d" % (pid, comm, reads, writes, rb // 1024, wb // 1024)
            w(line + (f" {path}\n" if self.o.per_file else "\n"))
        w("\n")
        self.rows.out.flush()


def _loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return f.read().strip()
    except OSError:
        return "?"


TOOL = Rwtop
