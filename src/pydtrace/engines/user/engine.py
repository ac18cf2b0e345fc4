"""The user-space engine: runs a checked program's clauses for probes that fire
in this process (BEGIN, END, ERROR, profile and tick timers) and, in later
issues, for events from ptrace and tracefs sources.

Records go to the consumer as soon as a clause completes, so output order
is firing order, as with dtrace's principal buffers drained in order.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from pydtrace.consume.consumer import Consumer, record_size
from pydtrace.consume.records import Fault, Record
from pydtrace.engines.signals import StopFlag, WakeUp
from pydtrace.engines.user.faults import ProbeFault
from pydtrace.engines.user.firing import Firing, Skip
from pydtrace.engines.user.interpreter import Compiler
from pydtrace.engines.user.memory import DEFAULT_SCRATCHSIZE
from pydtrace.engines.user.state import State
from pydtrace.lang.program import CheckedProgram
from pydtrace.options import size_option

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class UserEngine:
    def __init__(self, prog: CheckedProgram, consumer: Consumer, options: dict[str, Any]) -> None:
        self.prog = prog
        self.consumer = consumer
        self.options = options
        strsize = int(options.get("strsize", 256))
        self.state = State(
            prog,
            strsize,
            int(options.get("nspec", 1)),
            size_option(options, "scratchsize", 0) or DEFAULT_SCRATCHSIZE,
            size_option(options, "dynvarsize", 1 << 20),
        )
        self.specsize = size_option(options, "specsize", 4 << 20)
        self.reported: dict[str, int] = {}  # drops already reported, by kind
        consumer.aggs = self.state.aggs
        comp = Compiler(self.state, prog, options)
        # probe id -> [(clause info, compiled clause)] in program order
        self.by_probe: dict[int, list[tuple[Any, Callable[[Firing], None]]]] = {}
        self.probes: dict[int, Any] = {}
        for c in prog.clauses:
            fn = comp.clause(c)
            for p in c.probes:
                self.by_probe.setdefault(p.id, []).append((c, fn))
                self.probes[p.id] = p
        self.error_probe = next(
            (p for p in self.probes.values() if p.provider == "dtrace" and p.name == "ERROR"), None
        )
        self.stopping = StopFlag()  # set by the Ctrl-C handler: no lock (signals.py)
        self.ncpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        self.cpu = _current_cpu()
        self.error_count = 0
        self.tracer: Any = None  # a ptrace Tracer feeding events, for -c/-p

    # --- firing --------------------------------------------------------------------
    def fire_traced(
        self,
        probe: Any,
        args: list[Any],
        thread: Any,
        errno: int,
        objects: bool = False,
        at: int = 0,
    ) -> None:
        """Fire for an event of a traced thread: its pid, tid, names and ids.
        With objects, an argument given as bytes is a structure args[i] points at.
        `at`: the monotonic time of the thread's stop, for a firing run after
        it resumed (its `timestamp`)."""
        proc = thread.proc
        if not proc.loaded:
            proc.load()
        clauses = self.by_probe.get(probe.id)
        if not clauses:
            return
        # the context set here, not by a setup closure: this runs for every traced call
        f = Firing(probe, args, self.cpu)
        f.process = thread
        f.pid, f.tid, f.ppid = proc.pid, thread.tid, proc.ppid
        f.uid, f.gid, f.execname = proc.uid, proc.gid, proc.execname
        f.errno = errno
        f.at = at
        try:
            for i, a in enumerate(args if objects else ()):
                if isinstance(a, bytes):  # a structure (psinfo_t...): args[i] points at it
                    addr = self.state.mem.alloc(len(a))
                    self.state.mem.write(addr, a)
                    f.owned.append(addr)
                    args[i] = addr
            self._run_clauses(probe, clauses, f, False)
        finally:
            for addr in f.owned:
                self.state.mem.free(addr)

    def fire(
        self,
        probe: Any,
        args: list[int],
        cpu: int | None = None,
        in_error: bool = False,
        setup: Callable[[Firing], None] | None = None,
    ) -> None:
        clauses = self.by_probe.get(probe.id)
        if not clauses:
            return
        f = Firing(probe, args, self.cpu if cpu is None else cpu)
        if setup is not None:
            setup(f)
        try:
            self._run_clauses(probe, clauses, f, in_error)
        finally:
            for addr in f.owned:
                self.state.mem.free(addr)

    def _run_clauses(
        self, probe: Any, clauses: list[tuple[Any, Any]], f: Firing, in_error: bool
    ) -> None:
        consumer = self.consumer
        state = self.state
        # dtrace checks the activity state before each clause: once exit() has
        # made the session drain, later clauses of the same firing do not run
        # (END's clauses run in the draining state, so they all run).
        is_end = probe.provider == "dtrace" and probe.name == "END"
        for c, fn in clauses:
            if state.draining and not is_end:
                break
            f.items = []
            f.spec = 0
            f.clause = c.index
            f.dvar_dropped = False
            state.mem.reset_scratch()  # alloca'd memory lives for one clause
            try:
                fn(f)
            except Skip:
                continue
            except ProbeFault as pf:
                if in_error:
                    self.error_count += 1
                    continue
                consumer.fault(Fault(probe, f.cpu, c.index, pf.pc, pf.code, pf.value))
                if self.error_probe is not None:
                    self.fire(
                        self.error_probe,
                        [0, probe.id, c.index, pf.pc, pf.code, pf.value],
                        f.cpu,
                        in_error=True,
                    )
                continue
            if f.commits:
                for rec in f.commits:
                    consumer.record(rec)
                f.commits = []
            if f.spec:
                # a speculating clause leaves a record even with no data of its own
                self._speculate(Record(probe, f.cpu, c.index, f.items), f.spec)
                continue
            if c.records:
                consumer.record(Record(probe, f.cpu, c.index, f.items))

    def _speculate(self, rec: Record, sid: int) -> None:
        """Keep a record in its speculation's buffer, unless that would pass
        specsize: then dtrace ends the clause and counts a speculative drop."""
        buf = self.state.spec_busy.get(sid)
        if buf is None:
            return
        strsize = self.state.strsize
        used = sum(record_size(r.items, strsize) for r in buf)
        if rec.items and used + record_size(rec.items, strsize) > self.specsize:
            self.state.spec_size_drops += 1
            return
        buf.append(rec)

    def report_drops(self, final: bool = False) -> None:
        """Tell the consumer about drops counted since the last report (final:
        the last report, at the end of the run)."""
        st = self.state
        counts = {
            "DTRACEDROP_DYNAMIC": st.dvar_drops,
            "DTRACEDROP_SPEC": st.spec_size_drops,
            "DTRACEDROP_SPECUNAVAIL": st.spec_drops,
            "DTRACEDROP_DBLERROR": self.error_count,
        }
        for kind, n in counts.items():
            new = n - self.reported.get(kind, 0)
            if new > 0:
                self.consumer.drop(kind, new)
                self.reported[kind] = n

    # --- the session -----------------------------------------------------------------
    def run(self) -> None:
        """BEGIN, then timers (and event sources) until exit()/signal/targets gone, then END."""
        try:
            begin = self._named("BEGIN")
            if begin is not None:
                self.fire(begin, [])
            timers = self._timers()
            if not self.state.draining:
                if self.tracer is not None:
                    self._trace_loop(timers)
                    self.tracer.quiet()  # notified calls fire nothing once END is next
                else:
                    self._loop(timers)
            self._finish()
        finally:
            self.stopping.close()

    def _finish(self) -> None:
        """END (its clauses run while draining), the drops, the consumer's end."""
        end = self._named("END")
        if end is not None:
            self.state.draining = False
            self.fire(end, [])
        self.report_drops(final=True)
        self.consumer.finish()

    def _named(self, name: str) -> Any:
        return next(
            (p for p in self.probes.values() if p.provider == "dtrace" and p.name == name), None
        )

    def _timers(self) -> list[list[Any]]:
        """The probes this engine's clock fires (profile's: engines/user/providers)."""
        from pydtrace.engines.user.providers import provider_of

        timers = []
        now = time.monotonic_ns()
        for p in self.probes.values():
            timer = provider_of(p).timer(p)
            if timer is None:
                continue
            period, every = timer
            # [next due time, period, probe, fire on every CPU?]
            timers.append([now + period, period, p, every])
        return timers

    def _loop(self, timers: list[list[Any]]) -> None:
        stopping = self.stopping
        # with ticks asked for (the Python API's snapshots), no wait is longer
        tick = self.consumer.tick_interval
        cap = 0.5 if tick is None else min(tick, 0.5)
        while not self.state.draining and not stopping.is_set():
            self.consumer.tick()
            if not timers:
                stopping.wait(cap)
                continue
            timers.sort(key=lambda t: t[0])
            t = timers[0]
            delay = (t[0] - time.monotonic_ns()) / 1e9
            if tick is not None and delay > cap:
                stopping.wait(cap)
                continue
            if delay > 0 and stopping.wait(delay):
                break
            t[0] += t[1]
            if t[0] < time.monotonic_ns():  # fell behind: don't fire a burst to catch up
                t[0] = time.monotonic_ns() + t[1]
            probe = t[2]
            # the timer interrupts this process in user mode: arg0 (kernel pc)
            # is 0 and arg1 is where our thread is in user space
            args = [0, user_pc()]
            if t[3]:
                for cpu in range(self.ncpus):
                    self.fire(probe, args, cpu)
                    if self.state.draining:
                        break
            else:
                self.fire(probe, args)

    def _trace_loop(self, timers: list[list[Any]]) -> None:
        """Handle tracee stops until every target has exited, exit() or Ctrl-C.
        waitpid blocks; a signal handler interrupts it (see install_signal_handlers)."""
        tracer = self.tracer
        tracer.stopping = self.stopping  # a Ctrl-C just before a blocking wait: no wait
        tracer.resume_held()
        while not self.state.draining and not self.stopping.is_set() and tracer.live:
            self.consumer.tick()
            if timers:
                self._fire_due(timers)
                if not tracer.step(block=False):
                    with tracer.unlocked():
                        self.stopping.wait(0.005)
                continue
            try:
                tracer.step(block=True)
            except WakeUp:
                break

    def _fire_due(self, timers: list[list[Any]]) -> None:
        now = time.monotonic_ns()
        for t in timers:
            if t[0] <= now:
                t[0] = now + t[1]
                self.fire(t[2], [0, user_pc()])

    def stop(self) -> None:
        """Ask the session to end (Ctrl-C, SIGTERM): END still runs."""
        self.stopping.set()


def user_pc() -> int:
    """This thread's user-space program counter, or 0 if the kernel will not
    say. /proc/<tid>/syscall ends with the stack pointer and the pc at which
    the thread entered the kernel; reading it from the thread itself is a
    read(2) in progress, so the pc is a real user address of this process."""
    try:
        with open("/proc/thread-self/syscall") as f:
            fields = f.read().split()
        return int(fields[-1], 16) if len(fields) > 2 else 0
    except (OSError, ValueError, IndexError):
        return 0


def _current_cpu() -> int:
    try:
        with open("/proc/self/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[36])
    except (OSError, ValueError, IndexError):
        return 0
