"""The tracefs engine: D over ftrace events, without BPF.

It runs the program in the user-space engine's interpreter (it is a
UserEngine: the same clauses, firings, faults, drops and timers) and feeds
it the events of a tracefs instance of its own (instance.py): each
provider (providers/) says which events its probes fire from and the filter
their predicates allow (plan.py, filters.py); the per-CPU buffers are read
in binary from trace_pipe_raw (ringbuf.py), merged in timestamp order and
handed to the providers' handlers, which fire the probes with the context
of the event's task (pid, execname... from a table kept from fork, exec and
rename events and /proc). docs/internals/tracefs-engine.md tells the rest.
"""

from __future__ import annotations

import heapq
import os
import select
import struct
import time

from pydtrace.consume.consumer import Consumer
from pydtrace.engines.tracefs import filters, ringbuf
from pydtrace.engines.tracefs.instance import Instance, InstanceError
from pydtrace.engines.tracefs.plan import Plan
from pydtrace.engines.user.engine import UserEngine, user_pc
from pydtrace.engines.user.firing import Firing
from pydtrace.lang import ast
from pydtrace.lang.dataclass import dataclass, fields, is_dataclass
from pydtrace.lang.program import CheckedProgram
from pydtrace.options import size_option
from pydtrace.probes import tracefs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CLONE_THREAD = 0x10000
POLL_MS = 50  # the longest wait between two reads of the buffers
PAGES_PER_ROUND = 512  # per CPU, before the others get their turn


class TracefsEngineError(Exception):
    """Setting up tracing failed; str() is the sentence after 'could not enable tracing: '."""


@dataclass
class Task:
    tgid: int
    ppid: int
    uid: int
    gid: int
    comm: str


class Proc:
    """The firing task's user memory, for copyin*(): read at the time the
    event is handled, while the task is there (process_vm_readv, /proc/PID/mem)."""

    __slots__ = ("tid", "pid")

    def __init__(self, tid: int, pid: int) -> None:
        self.tid, self.pid = tid, pid

    def read(self, addr: int, size: int) -> bytes:
        from pydtrace.engines.user.ptrace.tracer import read_memory

        return read_memory(self.tid, addr, size)


class TracefsEngine(UserEngine):
    kind = "tracefs"

    def __init__(
        self,
        prog: CheckedProgram,
        consumer: Consumer,
        options: dict[str, Any],
        targets: Any = None,
    ) -> None:
        super().__init__(prog, consumer, options)
        self.targets = targets  # engines.launch.Targets of -c/-p
        # what a second Ctrl-C finishes before its _exit (install_signal_handlers)
        self.tracer = _Abort(self)
        self.instance = Instance()
        self.plan = Plan(self)
        self.tasks: dict[int, Task] = {}
        self.dispatch: dict[int, list[Any]] = {}
        self.fds: dict[int, int] = {}  # cpu -> trace_pipe_raw
        self.layout = ringbuf.PageLayout()
        self.read_size = 4096
        self.lost: dict[int, int] = {}  # cpu -> events the kernel lost (its stats)
        self.missed_pages = 0  # pages whose header said events were lost before them
        # sched_switch's chain on each CPU: the tid the last switch seen went to,
        # and how many switches the kernel made without the event (providers.sched)
        self.switch_last: dict[int, int] = {}
        self.hidden_switches = 0
        self._args_cache: dict[int, bool] = {}
        # -c children before their exec: their events are not the command's
        # (dtrace starts them at the exec, as the eBPF engine does)
        self.held: set[int] = set()
        self.exec_event: tuple[int, Any] = (-1, None)
        self.unsupported = ""  # why the program cannot run here (the session refuses it)
        self._setup_done = False
        self._plan()

    # --- setting up ---------------------------------------------------------------------
    def _plan(self) -> None:
        from pydtrace.engines.tracefs.providers import SUPPORTED, provider_of
        from pydtrace.engines.tracefs.providers.sched import UnsupportedProbe

        by_kind: dict[str, list[Any]] = {}
        for p in self.probes.values():
            by_kind.setdefault(p.kind, []).append(p)
        beyond = sorted({p.provider for p in self.probes.values() if p.kind not in SUPPORTED})
        if beyond:
            self.unsupported = (
                f"{', '.join(beyond)} probes need the eBPF engine; the tracefs engine fires "
                f"only {', '.join(sorted(SUPPORTED))} probes"
            )
            return
        kread = self.prog.kernel_reads[:1]
        if kread:
            what, line = kread[0]
            self.unsupported = (
                f"the tracefs engine cannot read kernel memory ({what}, line {line}); "
                "the eBPF engine reads it"
            )
            return
        try:
            for probes in by_kind.values():
                provider_of(probes[0]).enable(self.plan, probes)
            if self.plan.uses:
                self._bookkeeping()
        except UnsupportedProbe as e:
            self.unsupported = str(e)
        except tracefs.TracefsError as e:
            raise TracefsEngineError(str(e)) from None

    def _bookkeeping(self) -> None:
        """Events that keep the task table (tgid, parent, name) true for tasks
        that are gone by the time their events are read."""
        tasks = self.tasks
        p = self.plan
        fmt = tracefs.event_format("task", "task_newtask")
        n_pid, n_comm, n_flags = (fmt.field(x) for x in ("pid", "comm", "clone_flags"))

        def newtask(ts: int, cpu: int, tid: int, data: bytes) -> None:
            parent = self.task(tid)
            (child,) = struct.unpack_from("<i", data, n_pid.offset)
            (flags,) = struct.unpack_from("<Q", data, n_flags.offset)
            comm = _cstr(data[n_comm.offset : n_comm.offset + n_comm.size])
            if flags & CLONE_THREAD:
                tasks[child] = Task(parent.tgid, parent.ppid, parent.uid, parent.gid, comm)
            else:
                tasks[child] = Task(child, parent.tgid, parent.uid, parent.gid, comm)

        fmt = tracefs.event_format("task", "task_rename")
        r_pid, r_new = fmt.field("pid"), fmt.field("newcomm")

        def rename(ts: int, cpu: int, tid: int, data: bytes) -> None:
            (who,) = struct.unpack_from("<i", data, r_pid.offset)
            self.task(who).comm = _cstr(data[r_new.offset : r_new.offset + r_new.size])

        fmt = tracefs.event_format("sched", "sched_process_exec")
        e_file, e_pid, e_old = (fmt.field(x) for x in ("filename", "pid", "old_pid"))

        def exec_(ts: int, cpu: int, tid: int, data: bytes) -> None:
            from pydtrace.engines.tracefs.decode import data_loc

            (pid,) = struct.unpack_from("<i", data, e_pid.offset)
            (old,) = struct.unpack_from("<i", data, e_old.offset)
            path = data_loc(data, e_file.offset, e_file.size, e_file.rel_loc)
            self.held.discard(old)  # a -c child runs its command from here on
            t = self.task(old)
            # the kernel names the new image after the file's base name
            comm = os.path.basename(path).decode("latin-1")[:15]
            tasks[pid] = Task(pid, t.ppid, t.uid, t.gid, comm)

        # first in the handler lists: a user's handler sees the updated table
        p.want("task", "task_newtask", newtask, None, internal=True)
        p.want("task", "task_rename", rename, None, internal=True)
        p.want("sched", "sched_process_exec", exec_, None, internal=True)
        self.exec_event = (fmt.id, exec_)
        for use in p.uses.values():  # bookkeeping first on a shared event
            if use.internal and len(use.handlers) > 1:
                use.handlers.insert(0, use.handlers.pop())

    def setup(self) -> None:
        """Create the instance and enable every planned event (tracing stays
        off until run() turns it on). Once."""
        if not self.plan.uses or self._setup_done:
            return
        self._setup_done = True
        inst = self.instance
        try:
            inst.create()
            kb = size_option(self.options, "bufsize", 4 << 20) // 1024
            inst.buffer_kb(kb)
            inst.set("buffer_percent", "50")
            pids = self._pid_filter()
            if pids:
                inst.trace_pids(pids)
            for (group, event), _use in self.plan.uses.items():
                text = self.plan.filter_of((group, event))
                if text is not None:
                    inst.set_filter(group, event, text)
                fmt_id = self.plan.uses[(group, event)].fmt.id
                self.dispatch[fmt_id] = self.plan.uses[(group, event)].handlers
                inst.enable(group, event)
            self._open_buffers()
        except InstanceError as e:
            self.instance.remove()
            raise TracefsEngineError(str(e)) from None

    def _pid_filter(self) -> list[int]:
        """set_event_pid: when every clause of every probe fired from events
        requires `pid == N` (N's threads now, and with event-fork what they
        create), the kernel records only those tasks."""
        from pydtrace.engines.tracefs.providers import provider_of

        wanted: set[int] = set()
        for p in self.probes.values():
            if p.kind in ("dtrace", "profile"):
                continue
            for c, _ in self.by_probe.get(p.id, []):
                pids = filters.pid_conjuncts(c.predicate)
                if not pids:
                    return []
                wanted |= pids
        del provider_of
        tids: list[int] = []
        for pid in sorted(wanted):
            try:
                tids += sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
            except OSError:
                tids.append(pid)
        return tids

    def _open_buffers(self) -> None:
        inst = self.instance
        try:
            with open(os.path.join(inst.path, "events", "header_page")) as f:
                self.layout = ringbuf.parse_header_page(f.read())
        except (OSError, ValueError):
            pass
        self.read_size = self.layout.page_size
        try:
            self.read_size = max(self.read_size, int(inst.get("buffer_subbuf_size_kb")) * 1024)
        except (OSError, ValueError):
            pass
        for name in sorted(os.listdir(os.path.join(inst.path, "per_cpu"))):
            if not name.startswith("cpu"):
                continue
            cpu = int(name[3:])
            try:
                self.fds[cpu] = os.open(
                    inst.cpu_file(cpu, "trace_pipe_raw"), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
                )
            except OSError:
                continue  # an offline CPU
            self.lost[cpu] = 0

    def filters_text(self) -> str:
        """-S: the instance, its pid filter and each event's filter."""
        lines = [f"tracefs instance {self.instance.path or '(none)'}"]
        if self.instance.pid_filter:
            lines.append(
                f"  set_event_pid: {' '.join(map(str, self.instance.pid_filter))} (event-fork)"
            )
        for group, event in self.instance.enabled:
            text = self.instance.filters.get((group, event))
            lines.append(f"  {group}:{event}: " + (f"filter {text}" if text else "no filter"))
        return "\n".join(lines) + "\n"

    # --- the task table -------------------------------------------------------------------
    def task(self, tid: int) -> Task:
        t = self.tasks.get(tid)
        if t is None:
            t = self.tasks[tid] = _proc_task(tid)
        return t

    # --- firing ---------------------------------------------------------------------------
    def wants_args(self, probe: Any) -> bool:
        """Does a clause of the probe read args / argN (sdt builds a struct for it)?"""
        v = self._args_cache.get(probe.id)
        if v is None:
            v = self._args_cache[probe.id] = any(
                _mentions_args([c.predicate, *(c.body or [])])
                for c, _ in self.by_probe.get(probe.id, [])
            )
        return v

    def fire_event(
        self,
        probe: Any,
        args: list[Any],
        ts: int,
        cpu: int,
        tid: int,
        errno: int = 0,
        struct_bytes: bytes | None = None,
        fill: Any = None,
    ) -> None:
        """Fire probe for an event of task tid: its identity from the task
        table, `timestamp` the event's. args given as bytes are structures
        (psinfo_t...) args[i] points at; struct_bytes is what `args` points
        at, and fill(its address) appends args[] into it."""
        if tid not in self.tasks:
            self.task(tid)
        if self.state.draining or probe.id not in self.by_probe:
            return
        t = self.tasks[tid]
        mem = self.state.mem

        def setup(f: Firing) -> None:
            f.pid, f.tid, f.ppid = t.tgid, tid, t.ppid
            f.uid, f.gid, f.execname = t.uid, t.gid, t.comm
            f.errno = errno
            f.ts = ts
            f.process = Proc(tid, t.tgid) if tid else None
            if struct_bytes is not None:
                addr = mem.alloc(len(struct_bytes))
                mem.write(addr, struct_bytes)
                f.owned.append(addr)
                f.argsp = addr
                if fill is not None:
                    fill(addr)
            for i, a in enumerate(args):
                if isinstance(a, bytes):
                    addr = mem.alloc(len(a))
                    mem.write(addr, a)
                    f.owned.append(addr)
                    args[i] = addr

        self.fire(probe, args, cpu, setup=setup)

    # --- running ----------------------------------------------------------------------------
    def run(self) -> None:
        try:
            self.setup()
            begin = self._named("BEGIN")
            if self.instance.path:
                self.instance.set("tracing_on", "1")
            if begin is not None:
                self.fire(begin, [])
            if self.targets is not None:
                self.held = {t.pid for t in self.targets.targets if t.created}
                self.targets.release()
            timers = self._timers()
            if not self.state.draining and not self.stopping.is_set():
                self._event_loop(timers)
            if self.instance.path:
                self.instance.set("tracing_on", "0")
                if not self.state.draining:
                    self.drain()
            self._finish()
        finally:
            self.close()

    def _event_loop(self, timers: list[list[Any]]) -> None:
        poller = select.poll()
        for fd in self.fds.values():
            poller.register(fd, select.POLLIN)
        watched = list(self.targets.fds()) if self.targets is not None else []
        for fd in watched:
            poller.register(fd, select.POLLIN)
        while not self.state.draining and not self.stopping.is_set():
            timeout = POLL_MS
            if timers:
                due = min(t[0] for t in timers)
                timeout = max(0, min(timeout, (due - time.monotonic_ns()) // 1_000_000))
            try:
                ready = poller.poll(timeout)
            except InterruptedError:
                ready = []
            self.drain()
            self._fire_timers(timers)
            self.report_drops()
            ended = False
            for fd, _ in ready:
                if fd in watched and self.targets.gone(fd):
                    poller.unregister(fd)
                    ended = True
            if ended and self.targets.live <= 0:
                self.drain()  # the targets' last events are in the buffers
                break

    def _fire_timers(self, timers: list[list[Any]]) -> None:
        now = time.monotonic_ns()
        for t in timers:
            if t[0] > now or self.state.draining:
                continue
            t[0] += t[1]
            if t[0] < now:  # fell behind: no burst to catch up
                t[0] = now + t[1]
            args = [0, user_pc()]
            if t[3]:
                for cpu in range(self.ncpus):
                    self.fire(t[2], list(args), cpu)
            else:
                self.fire(t[2], args)

    def drain(self) -> None:
        """Read every CPU's buffer, merge the events by time and fire them."""
        per_cpu = []
        for cpu, fd in self.fds.items():
            evs = self._read_cpu(cpu, fd)
            if evs:
                per_cpu.append(evs)
        if not per_cpu:
            return
        merged = per_cpu[0] if len(per_cpu) == 1 else heapq.merge(*per_cpu)
        dispatch = self.dispatch
        held = self.held
        unpack = _COMMON.unpack_from
        for ts, cpu, data in merged:
            if self.state.draining:
                break
            etype, tid = unpack(data, 0)
            if tid in held:
                if etype == self.exec_event[0]:
                    self.exec_event[1](ts, cpu, tid, data)
                continue
            handlers = dispatch.get(etype)
            if handlers is None:
                continue
            for h in handlers:
                h(ts, cpu, tid, data)

    def _read_cpu(self, cpu: int, fd: int) -> list[tuple[int, int, bytes]]:
        out: list[tuple[int, int, bytes]] = []
        layout = self.layout
        for _ in range(PAGES_PER_ROUND):
            try:
                buf = os.read(fd, self.read_size)
            except BlockingIOError:
                break
            except OSError:
                break
            if not buf:
                break
            page = ringbuf.parse_page(buf, layout)
            if page.missed:
                self.missed_pages += 1
            out.extend((ts, cpu, data) for ts, data in page.events)
        return out

    def report_drops(self, final: bool = False) -> None:
        super().report_drops(final)
        lost = self.missed_pages
        for cpu in self.lost:
            n = _lost(self.instance, cpu)
            lost += n
            new = n - self.lost[cpu]
            if new > 0:
                self.consumer.drop("DTRACEDROP_PRINCIPAL", new, cpu)
                self.lost[cpu] = n
        # the switches the kernel hid, once at the end; not when events were lost
        # (a gap in a CPU's chain of switches is then no sign of anything)
        if final and not lost:
            self.consumer.drop("PYDTRACEDROP_SWITCH", self.hidden_switches)

    def close(self) -> None:
        """Close the buffers and remove the instance: nothing left enabled."""
        for fd in self.fds.values():
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds = {}
        self.instance.remove()
        self.stopping.close()


class _Abort:
    """Stands where the signal handler looks for a ptrace tracer: a second
    Ctrl-C removes the instance and ends -c children before exiting."""

    in_wait = False

    def __init__(self, engine: TracefsEngine) -> None:
        self.engine = engine

    def finish(self) -> None:
        self.engine.close()
        if self.engine.targets is not None:
            self.engine.targets.finish()


_COMMON = struct.Struct("<H2xi")  # common_type, common_pid (as every format file has them)


def _lost(inst: Instance, cpu: int) -> int:
    """Events the kernel could not record on cpu (a full buffer): the stats'
    overrun (overwrite mode) and dropped events (ours)."""
    if not inst.path:
        return 0
    try:
        text = inst.get(f"per_cpu/cpu{cpu}/stats")
    except OSError:
        return 0
    n = 0
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("overrun", "dropped events"):
            try:
                n += int(value)
            except ValueError:
                pass
    return n


def _mentions_args(node: Any) -> bool:
    """Does this part of a clause read args, args[N] or argN?"""
    if isinstance(node, list | tuple):
        return any(_mentions_args(x) for x in node)
    if not is_dataclass(node):
        return False
    ref = getattr(node, "ref", None)
    if isinstance(node, ast.Ident) and isinstance(ref, tuple) and ref[0] == "builtin":
        name = ref[1]
        if name == "args" or (name.startswith("arg") and name[3:].isdigit()):
            return True
    if isinstance(node, ast.Index) and isinstance(ref, tuple) and ref[0] == "args":
        return True
    return any(_mentions_args(getattr(node, f.name)) for f in fields(node))


def _cstr(raw: bytes) -> str:
    nul = raw.find(b"\0")
    return (raw if nul < 0 else raw[:nul]).decode("latin-1")


def _proc_task(tid: int) -> Task:
    """A task first seen: its facts from /proc (a task already gone: what
    the tid says, no name)."""
    status: dict[str, str] = {}
    try:
        with open(f"/proc/{tid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                status[k] = v.strip()
    except OSError:
        return Task(tid, 0, 0, 0, "<...>" if tid else "swapper/0")
    try:
        uid = int(status.get("Uid", "0").split()[0])
        gid = int(status.get("Gid", "0").split()[0])
        return Task(int(status.get("Tgid", tid)), int(status.get("PPid", 0)), uid, gid,
                    status.get("Name", ""))  # fmt: skip
    except ValueError:
        return Task(tid, 0, 0, 0, status.get("Name", ""))
