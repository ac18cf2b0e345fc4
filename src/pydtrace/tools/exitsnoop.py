"""exitsnoop: processes as they end: how long they lived, their status or
the signal that killed them (BCC's exitsnoop; exitsnoop.d)."""

from __future__ import annotations

import os
import time as _time

from pydtrace.tools import options as O
from pydtrace.tools.decode import signal_name
from pydtrace.tools.output import Column
from pydtrace.tools.tool import Tool

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CLD_EXITED, CLD_KILLED, CLD_DUMPED = 1, 2, 3
FAILED = O.Opt("x", "failed", "failed", "only processes that failed: a status other than 0, or a signal")  # fmt: skip


class Exitsnoop(Tool):
    name = "exitsnoop"
    script_file = "exitsnoop.d"
    summary = "Trace process exits: name, pid, parent, age, and the exit status or the signal."
    options = (*O.SNOOP, FAILED, *O.TAIL)

    def __init__(self, o: O.Parsed) -> None:
        super().__init__(o)
        self.starts: dict[int, int] = {}  # pid -> start (CLOCK_MONOTONIC ns), from /proc

    def inline_values(self) -> dict[str, str]:
        return {**super().inline_values(), "FAILED_ONLY": "1" if self.o.failed else "0"}

    def columns(self) -> list[Column]:
        return [Column("comm", "PCOMM", 16), Column("pid", "PID", 7), Column("ppid", "PPID", 7),
                Column("tid", "TID", 7), Column("age_text", "AGE(s)", 7),
                Column("exit_text", "EXIT_CODE")]  # fmt: skip

    def started(self, session: Any) -> None:
        """The processes alive now: tracing will not see them start."""
        self.starts = process_starts()

    def event(self, probe: Any, values: list[Any]) -> dict[str, Any] | None:
        time, comm, pid, ppid, tid, how, status, sig, age, now = values
        if not age and pid in self.starts:
            age = now - self.starts[pid]
        ev: dict[str, Any] = {"time": time, "comm": comm, "pid": pid, "ppid": ppid, "tid": tid,
                              "age": round(age / 1e9, 6) if age > 0 else None}  # fmt: skip
        if how == CLD_EXITED:
            ev["exit_code"] = status
            text = "0" if status == 0 else f"code {status}"
        else:
            ev["signal"] = sig or None
            ev["signal_name"] = signal_name(sig) if sig else None
            ev["core_dumped"] = how == CLD_DUMPED
            text = f"signal {sig} ({signal_name(sig)[3:]})" if sig else "signal ?"
            if how == CLD_DUMPED:
                text += ", core dumped"
        if not self.rows.json:
            ev["exit_text"] = text
            ev["age_text"] = "%.2f" % (age / 1e9) if age > 0 else "-"
        return ev


def process_starts() -> dict[int, int]:
    """pid -> start time on CLOCK_MONOTONIC (ns) of every process now (/proc/PID/stat's
    starttime counts clock ticks since boot, CLOCK_BOOTTIME)."""
    hz = os.sysconf("SC_CLK_TCK")
    boot_to_mono = _time.clock_gettime_ns(_time.CLOCK_BOOTTIME) - _time.monotonic_ns()
    starts = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        starts[int(name)] = int(fields[19]) * 1_000_000_000 // hz - boot_to_mono
    return starts


TOOL = Exitsnoop
