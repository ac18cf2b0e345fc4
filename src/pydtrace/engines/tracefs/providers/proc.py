"""proc:::* on the tracefs engine, from scheduler, task, signal and syscall
events; psinfo_t / lwpsinfo_t arguments are read from /proc when the event
is handled (engines/user/procinfo.py), so a process already gone reads as
zeros. docs/internals/tracefs-engine.md maps each probe to its events.

| probe | event | context |
| create / lwp-create | task:task_newtask (CLONE_THREAD or not) | the parent |
| start / lwp-start | syscalls:sys_exit_{clone,fork,vfork,clone3} returning 0 | the new task |
| exec | sys_enter_execve(at), fired at its outcome (sched_process_exec: its
  path; sys_exit with an error: the path read from the caller's memory) | the caller |
| exec-success | sched:sched_process_exec | the new image |
| exec-failure | sys_exit_execve(at) < 0 | the caller |
| exit / lwp-exit | sched:sched_process_exit, group_dead or not | the exiting thread |
| signal-send / signal-discard | signal:signal_generate, result 0 / 1 | the sender |
| signal-handle | signal:signal_deliver | the receiver |
"""

from __future__ import annotations

import struct

from pydtrace.engines.tracefs.plan import Plan
from pydtrace.engines.tracefs.providers.base import TracefsProvider
from pydtrace.probes import tracefs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CLONE_THREAD = 0x10000
CLD_EXITED = 1
FORKS = ("clone", "fork", "vfork", "clone3")
EXECS = ("execve", "execveat")


def _i32(fmt: tracefs.EventFormat, name: str) -> Any:
    off = fmt.field(name).offset
    s = struct.Struct("<i")
    return lambda data: s.unpack_from(data, off)[0]


class ProcProvider(TracefsProvider):
    name = "proc"

    def enable(self, plan: Plan, probes: list[Any]) -> None:
        from pydtrace.engines.user import procinfo

        engine = plan.engine
        by = {p.name: p for p in probes}
        fire = engine.fire_event

        if "create" in by or "lwp-create" in by:
            fmt = tracefs.event_format("task", "task_newtask")
            child_of, off = _i32(fmt, "pid"), fmt.field("clone_flags").offset

            def newtask(ts: int, cpu: int, tid: int, data: bytes) -> None:
                child = child_of(data)
                (flags,) = struct.unpack_from("<Q", data, off)
                t = engine.task(child)
                if flags & CLONE_THREAD:
                    p = by.get("lwp-create")
                    if p is not None:
                        a = [procinfo.lwpsinfo(t.tgid, child), procinfo.psinfo(t.tgid, child)]
                        fire(p, a, ts, cpu, tid)
                elif "create" in by:
                    fire(by["create"], [procinfo.psinfo(child, child)], ts, cpu, tid)

            plan.want("task", "task_newtask", newtask, None)

        if "start" in by or "lwp-start" in by:
            for call in FORKS:
                ev = f"sys_exit_{call}"
                if not tracefs.has_event("syscalls", ev):
                    continue
                ret_off = tracefs.event_format("syscalls", ev).field("ret").offset

                def started(ts: int, cpu: int, tid: int, data: bytes, off: int = ret_off) -> None:
                    (ret,) = struct.unpack_from("<q", data, off)
                    if ret != 0:
                        return
                    t = engine.task(tid)
                    if t.tgid == tid and "start" in by:
                        fire(by["start"], [], ts, cpu, tid)
                    if "lwp-start" in by:
                        fire(by["lwp-start"], [], ts, cpu, tid)

                plan.want("syscalls", ev, started, "ret == 0")

        if {"exec", "exec-failure", "exec-success"} & set(by):
            self._exec(plan, by)

        if "exit" in by or "lwp-exit" in by:
            fmt = tracefs.event_format("sched", "sched_process_exit")
            dead_off = fmt.field("group_dead").offset

            def exited(ts: int, cpu: int, tid: int, data: bytes) -> None:
                if "lwp-exit" in by:
                    fire(by["lwp-exit"], [], ts, cpu, tid)
                if data[dead_off] and "exit" in by:
                    fire(by["exit"], [CLD_EXITED], ts, cpu, tid)

            plan.want("sched", "sched_process_exit", exited, None)

        if "signal-send" in by or "signal-discard" in by:
            fmt = tracefs.event_format("signal", "signal_generate")
            sig_of, pid_of, res_of = _i32(fmt, "sig"), _i32(fmt, "pid"), _i32(fmt, "result")

            def generated(ts: int, cpu: int, tid: int, data: bytes) -> None:
                res = res_of(data)
                p = by.get("signal-send" if res == 0 else "signal-discard" if res == 1 else "")
                if p is None:
                    return
                target = pid_of(data)
                tg = engine.task(target).tgid
                a = [procinfo.lwpsinfo(tg, target), procinfo.psinfo(tg, target), sig_of(data)]
                fire(p, a, ts, cpu, tid)

            terms = [t for n, t in (("signal-send", "result == 0"), ("signal-discard", "result == 1"))
                     if n in by]  # fmt: skip
            plan.want("signal", "signal_generate", generated, " || ".join(terms))

        if "signal-handle" in by:
            fmt = tracefs.event_format("signal", "signal_deliver")
            sig_of = _i32(fmt, "sig")

            def delivered(ts: int, cpu: int, tid: int, data: bytes) -> None:
                fire(by["signal-handle"], [sig_of(data), 0, 0], ts, cpu, tid)

            plan.want("signal", "signal_deliver", delivered, None)

    def _exec(self, plan: Plan, by: dict[str, Any]) -> None:
        """exec fires once its outcome is known: at sched_process_exec (the
        path from the event) or at a failed return (the path read from the
        caller's memory at the entry, while the old image is still there)."""
        from pydtrace.engines.user.ptrace.tracer import read_string

        engine = plan.engine
        fire = engine.fire_event
        pending: dict[int, tuple[int, int, int]] = {}  # tid -> (ts, cpu, path address)
        limit = int(engine.options.get("strsize", 256))
        if "exec" in by or "exec-failure" in by:
            for call in EXECS:
                ev = f"sys_enter_{call}"
                if not tracefs.has_event("syscalls", ev):
                    continue
                off = tracefs.event_format("syscalls", ev).field("filename").offset

                def entered(ts: int, cpu: int, tid: int, data: bytes, off: int = off) -> None:
                    (addr,) = struct.unpack_from("<Q", data, off)
                    pending[tid] = (ts, cpu, addr)

                plan.want("syscalls", ev, entered, None)
                xev = f"sys_exit_{call}"
                ret_off = tracefs.event_format("syscalls", xev).field("ret").offset

                def failed(ts: int, cpu: int, tid: int, data: bytes, off: int = ret_off) -> None:
                    (ret,) = struct.unpack_from("<q", data, off)
                    start = pending.pop(tid, None)
                    if ret >= 0:
                        return
                    if start is not None and "exec" in by:
                        raw = read_string(tid, start[2], limit) or b""
                        fire(by["exec"], [raw.decode("latin-1")], start[0], start[1], tid)
                    if "exec-failure" in by:
                        fire(by["exec-failure"], [-ret], ts, cpu, tid)

                plan.want("syscalls", xev, failed, "ret < 0")
        fmt = tracefs.event_format("sched", "sched_process_exec")
        from pydtrace.engines.tracefs.decode import data_loc

        f_file, pid_of, old_of = fmt.field("filename"), _i32(fmt, "pid"), _i32(fmt, "old_pid")

        def succeeded(ts: int, cpu: int, tid: int, data: bytes) -> None:
            old, pid = old_of(data), pid_of(data)
            start = pending.pop(old, None)
            if "exec" in by:
                path = data_loc(data, f_file.offset, f_file.size, f_file.rel_loc)
                at = start[:2] if start is not None else (ts, cpu)
                fire(by["exec"], [path.decode("latin-1")], at[0], at[1], pid)
            if "exec-success" in by:
                fire(by["exec-success"], [], ts, cpu, pid)

        plan.want("sched", "sched_process_exec", succeeded, None)
