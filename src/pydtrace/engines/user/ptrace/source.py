"""Glue between the tracer and the engine: which syscalls to stop on, and
turning tracer events into probe firings with the traced thread's context."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterable

from pydtrace.engines.user.providers import provider_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Calls that send a signal: their number, and the argument holding the target
# and the signal.  tgkill/rt_tgsigqueueinfo name a thread (tgid, tid, sig).
SENDERS = {
    "kill": ("pid", 1),
    "tkill": ("tid", 1),
    "tgkill": ("tgid-tid", 2),
    "rt_sigqueueinfo": ("pid", 1),
    "rt_tgsigqueueinfo": ("tgid-tid", 2),
}
EXECS = ("execve", "execveat")

# A syscall probe fires while its thread is stopped if a clause of it reads
# the thread itself (its memory, its registers, /proc files that change as
# it runs), acts on it, or prints (a record of a call comes out before what
# the call does, as strace's line does). Any other (counting, timing,
# variables) fires just after the thread is resumed, running while the
# thread does: a resumed thread wakes on another CPU, and the wait for that,
# which grows with the time it stayed stopped, is most of what a stop costs.
_LIVE_CALLS = frozenset({"copyin", "copyinstr", "copyinto", "copyout", "copyoutstr", "ustack",
                         "jstack", "commit"})  # fmt: skip
_LIVE_NAMES = frozenset({"uregs", "ucaller", "vtimestamp", "curpsinfo", "curlwpsinfo", "cwd",
                         "root", "fds"})  # fmt: skip


def fires_stopped(clauses: Iterable[Any]) -> bool:
    """Must a probe with these clauses (ClauseInfo) fire while its thread is
    stopped? Translators count as reading the thread: theirs read /proc. The
    recording actions include those that act on it (stop, raise, chill)."""
    from pydtrace.lang import ast

    clauses = list(clauses)
    if any(c.records for c in clauses):
        return True
    nodes = [(c.predicate, c.body) for c in clauses]
    return ast.uses(nodes, _LIVE_CALLS, _LIVE_NAMES, (ast.Xlate,))


class Sink:
    """Receives tracer events and fires the matching enabled probes."""

    def __init__(self, probes: Iterable[Any], table: Any) -> None:
        self.engine: Any = None  # set once the engine exists
        self.entry_probes: dict[int, Any] = {}
        self.return_probes: dict[int, Any] = {}
        self.proc_probes: dict[str, Any] = {}
        by_name = table.by_name if table is not None else {}
        self.exec_numbers = {by_name[n].nr for n in EXECS if n in by_name}
        self.senders = {by_name[n].nr: how for n, how in SENDERS.items() if n in by_name}
        self.proc_entries: set[int] = set()  # calls whose entry a proc probe needs
        self.proc_exits: set[int] = set()  # calls whose return a proc probe needs
        self.live: dict[int, bool] = {}  # probe id: fires while its thread is stopped
        for p in probes:  # each provider says what its probes need (engines/user/providers)
            provider_of(p).enable(self, p, table)

    def traced_numbers(self) -> set[int]:
        """Every call that must stop the tracee."""
        return (
            set(self.entry_probes) | set(self.return_probes) | self.proc_entries | self.proc_exits
        )

    def draining(self) -> bool:
        """Has a clause ended the run (exit())?"""
        return self.engine is not None and self.engine.state.draining

    def exit_numbers(self) -> set[int]:
        """The calls whose return must be seen."""
        return set(self.return_probes) | self.proc_exits

    # The tracer calls entry() and exit() with the thread stopped, resumes it,
    # then calls what they return (the firings that can wait for that).
    def entry(self, t: Any, nr: int, args: tuple[int, ...]) -> Callable[[], None] | None:
        if nr in self.proc_entries:
            self._exec(t, nr, args)
        p = self.entry_probes.get(nr)
        return None if p is None else self._fire(p, list(args), t, 0)

    def exit(self, t: Any, nr: int, rval: int) -> Callable[[], None] | None:
        err = -rval if -4095 <= rval <= -1 else 0
        if nr in self.proc_exits:
            if nr in self.exec_numbers:
                if err:
                    self.proc("exec-failure", t, [err])
            elif nr in self.senders and rval == 0:
                self._signal_sent(t, nr)
        p = self.return_probes.get(nr)
        return None if p is None else self._fire(p, [rval, rval], t, err)

    def _fire(self, p: Any, args: list[int], t: Any, err: int) -> Callable[[], None] | None:
        engine = self.engine
        live = self.live.get(p.id)
        if live is None:
            live = self.live[p.id] = fires_stopped(c for c, _ in engine.by_probe.get(p.id, ()))
        if live:
            engine.fire_traced(p, args, t, err)
            return None
        if not t.proc.loaded:
            t.proc.load()  # its names as they are at the stop
        at = time.monotonic_ns()
        return lambda: engine.fire_traced(p, args, t, err, at=at)

    def proc(self, kind: str, t: Any, args: list[Any]) -> None:
        p = self.proc_probes.get(kind)
        if p is not None:
            self.engine.fire_traced(p, args, t, 0, objects=True)

    def wants(self, kind: str) -> bool:
        return kind in self.proc_probes

    # --- proc events seen at a syscall ------------------------------------------
    def _exec(self, t: Any, nr: int, args: tuple[int, ...]) -> None:
        from pydtrace.engines.user.ptrace.tracer import read_string

        addr = args[1] if nr != min(self.exec_numbers) and len(self.exec_numbers) > 1 else args[0]
        limit = int(self.engine.options.get("strsize", 256)) if self.engine is not None else 256
        path = read_string(t.tid, addr, limit) or b""
        self.proc("exec", t, [path.decode("latin-1")])

    def _signal_sent(self, t: Any, nr: int) -> None:
        """signal-send for one recipient named by pid or tid; a process group
        (kill with pid <= 0) has recipients ptrace cannot list exactly."""
        from pydtrace.engines.user import procinfo

        how, sigarg = self.senders[nr]
        sig = t.args[sigarg] & 0xFFFFFFFF
        if sig == 0 or sig >= signal.NSIG:
            return
        if how == "pid":
            pid = _as_int(t.args[0])
            if pid <= 0:
                return
            tid = pid
        elif how == "tid":
            tid = _as_int(t.args[0])
            pid = procinfo.tgid_of(tid)
        else:
            pid, tid = _as_int(t.args[0]), _as_int(t.args[1])
        self.proc("signal-send", t, [procinfo.lwpsinfo(pid, tid), procinfo.psinfo(pid, tid), sig])


def _as_int(v: int) -> int:
    """A pid_t argument: the low 32 bits, signed."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v
