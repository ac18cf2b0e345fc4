"""sched:::* on the tracefs engine, from sched:sched_switch and
sched:sched_wakeup (and sys_enter_sched_yield for surrender), as on the
eBPF engine (docs/internals/proc-sched.md): on-cpu runs as the incoming
thread, off-cpu/sleep/preempt/dequeue as the outgoing one, wakeup/enqueue as
the waker. psinfo_t / lwpsinfo_t arguments are read from /proc when the
event is handled. tick has no event: it is refused."""

from __future__ import annotations

import struct

from pydtrace.engines.tracefs.plan import Plan
from pydtrace.engines.tracefs.providers.base import TracefsProvider
from pydtrace.probes import tracefs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SWITCH = ("on-cpu", "off-cpu", "sleep", "preempt", "dequeue")
STATE_MASK = 0xFF  # prev_state's task states (TASK_REPORT_MAX marks a preemption)


class UnsupportedProbe(tracefs.TracefsError):
    pass


class SchedProvider(TracefsProvider):
    name = "sched"

    def enable(self, plan: Plan, probes: list[Any]) -> None:
        from pydtrace.engines.user import procinfo

        engine = plan.engine
        fire = engine.fire_event
        by = {p.name: p for p in probes}
        for name in by:
            if name not in (*SWITCH, "wakeup", "enqueue", "surrender"):
                raise UnsupportedProbe(
                    f"the tracefs engine cannot fire sched:::{name} (no event for it)"
                )

        wants = {n: engine.wants_args(p) for n, p in by.items()}

        def info(tid: int, name: str = "") -> list[bytes]:
            if name and not wants[name]:
                return []  # /proc is read only for a clause that reads the arguments
            t = engine.task(tid)
            return [procinfo.lwpsinfo(t.tgid, tid), procinfo.psinfo(t.tgid, tid)]

        def cpuinfo(cpu: int) -> bytes:
            return struct.pack("<iiiiQ", cpu, 0, 0, 0, 0)

        if set(SWITCH) & set(by):
            fmt = tracefs.event_format("sched", "sched_switch")
            prev_off = fmt.field("prev_pid").offset
            next_off = fmt.field("next_pid").offset
            state_off = fmt.field("prev_state").offset
            state_size = fmt.field("prev_state").size
            sfmt = "<q" if state_size == 8 else "<i"

            last = engine.switch_last
            held = engine.held

            def switched(ts: int, cpu: int, tid: int, data: bytes) -> None:
                (prev,) = struct.unpack_from("<i", data, prev_off)
                (nxt,) = struct.unpack_from("<i", data, next_off)
                # a CPU's switches chain: one the kernel made without the event
                # (a task hidden from tracing switched away) breaks it, as on the
                # eBPF engine (providers/sched._watch there). A held -c child's
                # events are not handed here: a break after one is no sign.
                was = last.get(cpu)
                last[cpu] = nxt
                if was is not None and was != prev and was not in held:
                    engine.hidden_switches += 1
                (state,) = struct.unpack_from(sfmt, data, state_off)
                blocked = state & STATE_MASK != 0
                if "off-cpu" in by:
                    fire(by["off-cpu"], info(nxt, "off-cpu"), ts, cpu, prev)
                if blocked and "sleep" in by:
                    fire(by["sleep"], [], ts, cpu, prev)
                if not blocked and "preempt" in by:
                    fire(by["preempt"], [], ts, cpu, prev)
                if blocked and "dequeue" in by:
                    fire(
                        by["dequeue"],
                        [*info(prev), cpuinfo(cpu), 0] if wants["dequeue"] else [],
                        ts,
                        cpu,
                        prev,
                    )
                if "on-cpu" in by:
                    fire(by["on-cpu"], [], ts, cpu, nxt)

            plan.want("sched", "sched_switch", switched, None)
        if "wakeup" in by or "enqueue" in by:
            fmt = tracefs.event_format("sched", "sched_wakeup")
            pid_off = fmt.field("pid").offset
            cpu_off = fmt.field("target_cpu").offset

            def woken(ts: int, cpu: int, tid: int, data: bytes) -> None:
                (who,) = struct.unpack_from("<i", data, pid_off)
                if "wakeup" in by:
                    fire(by["wakeup"], info(who, "wakeup"), ts, cpu, tid)
                if "enqueue" in by:
                    (target,) = struct.unpack_from("<i", data, cpu_off)
                    fire(
                        by["enqueue"],
                        [*info(who), cpuinfo(target), 0] if wants["enqueue"] else [],
                        ts,
                        cpu,
                        tid,
                    )

            plan.want("sched", "sched_wakeup", woken, None)
        if "surrender" in by:

            def yielded(ts: int, cpu: int, tid: int, data: bytes) -> None:
                fire(by["surrender"], info(tid, "surrender"), ts, cpu, tid)

            plan.want("syscalls", "sys_enter_sched_yield", yielded, None)
