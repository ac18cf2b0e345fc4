"""runqlat: run queue latency histograms in BCC's layout (runqlat.d)."""

from __future__ import annotations

from pydtrace.tools import histogram as H
from pydtrace.tools import options as O

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PER_PROCESS = O.Opt("P", "pids", "per_process", "one histogram per process")
PER_THREAD = O.Opt("L", "tids", "per_thread", "one histogram per thread")
PID = O.Opt("p", "pid", "pid", "measure this process only", "PID", O.pid_value)
COMMAND = O.Opt(None, "command", "command", "run CMD; measure it and its children until it ends", "CMD", O.command_words)  # fmt: skip


# A thread measured that leaves the CPU twice with no switch-in between came
# on while the kernel fired nothing (a task hidden from tracing switched to
# it): that wait is not in the histogram, and the command says how many. A
# thread's last switch-out, after its lwp-exit, leaves nothing behind.
UNSEEN = """
self int out, dead;	/* left the CPU, not seen back on yet; exiting */

proc:::lwp-exit
/SELECTED/
{
	self->dead = 1;
}

sched:::off-cpu
/SELECTED && !self->dead/
{
	@unseen = sum(self->out);
	self->out = 1;
}

sched:::off-cpu
/self->dead/
{
	@unseen = sum(self->out);
	self->out = 0;
	self->dead = 0;
}

sched:::on-cpu
/self->out/
{
	self->out = 0;
}

END
{
	printa(@unseen);
}
"""


class Runqlat(H.Summary):
    name = "runqlat"
    script_file = "runqlat.d"
    summary = (
        "Summarize run queue latency as a histogram (BCC's runqlat): how long runnable "
        "threads waited for a CPU, from wakeup or preemption to switch-in; every interval "
        "seconds, count times, or at the end."
    )
    options = (H.TIMESTAMP, H.MILLI, PER_PROCESS, PER_THREAD, PID, COMMAND, O.JSON, *O.TAIL)
    kernel_only = True
    examples = (
        ("runqlat", "A histogram of run queue latency in microseconds at Ctrl-C."),
        ("runqlat -m 5 1", "One histogram in milliseconds after five seconds."),
        ("runqlat -P -p 1234", "The run queue latency of process 1234."),
    )
    heading = "Tracing run queue latency... Hit Ctrl-C to end."

    @classmethod
    def parse(cls, argv: list[str]) -> O.Parsed:
        o = super().parse(argv)
        if o.per_process and o.per_thread:
            raise O.UsageError("-P and -L cannot be used together")
        return o

    @property
    def key_name(self) -> str:  # type: ignore[override]
        return "tid" if self.o.per_thread else "pid"

    def inline_values(self) -> dict[str, str]:
        o = self.o
        return {**super().inline_values(), "TARGET": str(o.pid or 0),
                "PER_PROCESS": "1" if o.per_process else "0",
                "PER_THREAD": "1" if o.per_thread else "0",
                "UNIT": "1000000" if o.milliseconds else "1000"}  # fmt: skip

    def extra_clauses(self) -> str:
        # only for the threads of one process or command: system-wide, the
        # clauses would cost every context switch a program run
        return super().extra_clauses() + (UNSEEN if self.o.pid or self.o.command else "")

    def hook(self, consumer: Any, rec: Any, item: Any) -> bool:
        if self.unseen_switch_ins(consumer, item, ("not in the histogram",) * 2):
            return True
        return super().hook(consumer, rec, item)

    def shown(self) -> str:
        return "@tid_lat" if self.o.per_thread else "@pid_lat" if self.o.per_process else "@lat"

    def key_fields(self, key: tuple[Any, ...]) -> dict[str, Any]:
        return {self.key_name: key[0], "comm": key[1]} if key else {}


TOOL = Runqlat
