"""What a recording is asked to do, shared by the ktrace front end and the
two recorders (record_ptrace.py, record_ebpf.py).

A recorder module has one entry point:

    record(opts: RecordOptions, writer: format.Writer, stop: StopFlag,
           ready: Callable[[], None] | None = None) -> int

It writes the START record, records until every target has exited or `stop`
is set (Ctrl-C, SIGTERM, `ktrace -c/-C`), flushes the writer, and returns
the exit status ktrace exits with: the command's own status when it ran one
(128 + signal when a signal killed it), else 0. It calls ready() once every
target is being traced (a `-p` recorder running in the background tells its
parent then). A user error (no such pid, not permitted, no such command)
raises RecordError with the message ktrace prints; the traced processes are
left as they were.
"""

from __future__ import annotations

import os
import time

from pydtrace.ktrace import format as F
from pydtrace.lang.dataclass import dataclass, field


class RecordError(Exception):
    """A recording that cannot start: the message is shown as `ktrace: <msg>`."""


@dataclass
class RecordOptions:
    points: str = F.DEFAULT_POINTS  # trace-point letters (keys of format.POINTS)
    command: list[str] | None = None  # run and trace this (argv)
    pids: list[int] = field(default_factory=list)  # -p (one) or the members of -g
    pgid: int | None = None  # -g: the group (new members are followed with -i)
    inherit: bool = True  # -i: follow children created while recording
    descend: bool = False  # -d: also the current descendants of -p/-g targets
    maxdata: int = 4096  # most bytes of GIO data kept per call (OpenBSD keeps all; -m in kdump)
    bind_now: bool = False  # -B: LD_BIND_NOW=1 for the command
    engine: str = "ptrace"

    def wants(self, letter: str) -> bool:
        return letter in self.points


def check_targets(pids: list[int]) -> None:
    """Each -p/-g target must exist, be this user's to trace, and not be the recorder."""
    for p in pids:
        try:
            os.kill(p, 0)
        except ProcessLookupError:
            raise RecordError(f"pid {p}: No such process") from None
        except PermissionError:
            raise RecordError(f"pid {p}: Operation not permitted") from None
        if p == os.getpid():
            raise RecordError(f"pid {p}: cannot trace the recorder itself")


def realtime_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_REALTIME)


def boot_to_realtime_ns() -> int:
    """Add to a CLOCK_MONOTONIC time (bpf_ktime_get_ns) to get CLOCK_REALTIME."""
    return time.clock_gettime_ns(time.CLOCK_REALTIME) - time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def start_record(opts: RecordOptions) -> F.Record:
    """The START record of a session with these options."""
    from pydtrace.probes.syscalls import table

    u = os.uname()
    if opts.command:
        what = " ".join(opts.command)
    elif opts.pgid is not None:
        what = f"pgid {opts.pgid}"
    else:
        what = "pid " + ",".join(str(p) for p in opts.pids)
    info = {
        "engine": opts.engine,
        "arch": f"{table().audit_arch:#x}",
        "points": opts.points,
        "maxdata": str(opts.maxdata),
        "kernel": u.release,
        "host": u.nodename,
        "command": what,
    }
    ns = realtime_ns()
    return F.start_record(info, ns // 1_000_000_000, ns % 1_000_000_000)
