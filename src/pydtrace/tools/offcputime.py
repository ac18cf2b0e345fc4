"""offcputime: off-CPU time by user and kernel stack (BCC's offcputime;
offcputime.d): the D program records each switch-out's stacks and each
switch-in's time off; this front end joins them per thread."""

from __future__ import annotations

from pydtrace.tools import options as O
from pydtrace.tools.stackreport import (
    COMMAND,
    DELIMITED,
    FOLDED,
    KERNEL_ONLY,
    SVG,
    USER_ONLY,
    StackTool,
)  # fmt: skip

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PF_KTHREAD = 0x00200000  # task_struct.flags: a kernel thread


def microseconds(text: str) -> int:
    try:
        n = int(text, 10)
    except ValueError:
        raise ValueError("not a number of microseconds") from None
    if n < 0:
        raise ValueError("must be 0 or more")
    return n


PID = O.Opt("p", "pid", "pid", "trace this process only", "PID", O.pid_value)
USER_THREADS = O.Opt("u", "user-threads-only", "user_threads", "user threads only (no kernel threads)")  # fmt: skip
KERNEL_THREADS = O.Opt("k", "kernel-threads-only", "kernel_threads", "kernel threads only (no user threads)")  # fmt: skip
MIN = O.Opt("m", "min-block-time", "min_us", "count only times off CPU of at least US microseconds (default 1)", "US", microseconds, 1)  # fmt: skip
MAX = O.Opt("M", "max-block-time", "max_us", "count only times off CPU of at most US microseconds", "US", microseconds)  # fmt: skip


class Offcputime(StackTool):
    name = "offcputime"
    script_file = "offcputime.d"
    summary = (
        "Summarize off-CPU time (us) by user + kernel stack (BCC's offcputime): how long "
        "threads were blocked or waiting, and where, for duration seconds or until Ctrl-C; "
        "folded stacks (-f) or a flame graph (--svg FILE)."
    )
    options = (PID, USER_THREADS, KERNEL_THREADS, USER_ONLY, KERNEL_ONLY, DELIMITED, FOLDED,
               SVG, MIN, MAX, COMMAND, O.JSON, *O.TAIL)  # fmt: skip
    kernel_only = True
    examples = (
        (
            "offcputime -p 1234 10",
            "Where process 1234 waited off the CPU for ten seconds, and how long.",
        ),
        (
            "offcputime -K -m 1000 -- tar cf /dev/null /usr",
            "Kernel stacks where tar blocked for a millisecond or more.",
        ),
        ("offcputime --svg offcpu.svg -p 1234 5", "An off-CPU flame graph of process 1234."),
    )
    countname = "us"
    what = "Tracing off-CPU time (us)"

    @classmethod
    def parse(cls, argv: list[str]) -> O.Parsed:
        o = super().parse(argv)
        if o.help or o.version:
            return o
        if o.user_threads and o.kernel_threads:
            raise O.UsageError("-u and -k cannot be used together")
        if o.max_us is not None and o.max_us < o.min_us:
            raise O.UsageError("-M must be at least -m")
        return o

    def __init__(self, o: O.Parsed) -> None:
        super().__init__(o)
        self.off: dict[int, tuple[int, str, Any, Any]] = {}  # tid -> its last switch-out

    def inline_values(self) -> dict[str, str]:
        o = self.o
        threads = (f"(curthread->flags & {PF_KTHREAD:#x}) == 0" if o.user_threads
                   else f"(curthread->flags & {PF_KTHREAD:#x}) != 0" if o.kernel_threads else "1")  # fmt: skip
        return {**super().inline_values(), "THREADS": threads, **self.stacks_inlines()}

    def extra_clauses(self) -> str:
        return self.duration_clause()

    def svg_title(self) -> str:
        return "Off-CPU time (offcputime)"

    def hook(self, consumer: Any, rec: Any, item: Any) -> bool:
        self.rows.out = consumer.out
        lost = ("its time off CPU not counted", "their times off CPU not counted")
        if self.unseen_switch_ins(consumer, item, lost):
            return True
        if rec.probe.provider != "sched":
            return super().hook(consumer, rec, item)
        if item is not rec.items[0]:
            return True  # the stacks: taken with the record's first item
        values = list(item.values)
        if rec.probe.name == "off-cpu":
            tid, pid, comm = values
            stacks = {it.values[0].kind: it.values[0] for it in rec.items[1:]}
            self.off[tid] = (pid, comm, stacks.get("ustack"), stacks.get("stack"))
            return True
        tid, ns = values
        off = self.off.pop(tid, None)
        us = ns // 1000
        if off is None or us < self.o.min_us or (self.o.max_us is not None and us > self.o.max_us):
            return True
        self.add(*off, us)
        return True


TOOL = Offcputime
