"""syscall::NAME:entry|return on the tracefs engine: the syscalls:sys_enter_NAME
/ sys_exit_NAME events, or, when a description names RAW_MIN calls or more
(or one without an event of its own), raw_syscalls:sys_enter / sys_exit for
all of them, dispatched by the call's number (`id == N` in the filter).

Arguments as on the eBPF engine: entry, the call's arguments (the others
0); return, arg0 = arg1 = the return value, errno = -ret for -4095 <= ret < 0.
A kernel filter is made of the clauses' predicates over argN / args[N] (the
event's fields) and tid / execname (plan.field_resolver)."""

from __future__ import annotations

import struct

from pydtrace.engines.tracefs import filters
from pydtrace.engines.tracefs.plan import Plan, field_resolver
from pydtrace.engines.tracefs.providers.base import TracefsProvider
from pydtrace.probes import tracefs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

RAW_MIN = 16  # as the eBPF engine's RAW_SYSCALL_MIN: one event for many calls
_ARGS6 = struct.Struct("<6Q")
_ID = struct.Struct("<q")
_RET = struct.Struct("<q")


def errno_of(ret: int) -> int:
    return -ret if -4095 <= ret <= -1 else 0


class SyscallProvider(TracefsProvider):
    name = "syscall"

    def enable(self, plan: Plan, probes: list[Any]) -> None:
        for which in ("entry", "return"):
            ps = [p for p in probes if p.name == which]
            if not ps:
                continue
            prefix = "sys_enter_" if which == "entry" else "sys_exit_"
            own = all(tracefs.has_event("syscalls", prefix + p.function) for p in ps)
            if own and len(ps) < RAW_MIN:
                for p in ps:
                    self._one(plan, p, prefix + p.function, which == "entry")
            else:
                self._raw(plan, ps, which == "entry")

    def _one(self, plan: Plan, probe: Any, event: str, entry: bool) -> None:
        engine = plan.engine
        fmt = tracefs.event_format("syscalls", event)
        fields = [f for f in fmt.event_fields if f.name != "__syscall_nr"]
        if entry:
            names = [f.name for f in fields]
            offs = [f.offset for f in fields]
            n = len(offs)
            unpack = struct.Struct("<" + "Q" * n).unpack_from if n else None
            first = offs[0] if n else 0
            contiguous = offs == [first + 8 * i for i in range(n)]

            def handler(ts: int, cpu: int, tid: int, data: bytes) -> None:
                if unpack is None:
                    args = [0] * 6
                elif contiguous:
                    args = [*unpack(data, first), *([0] * (6 - n))]
                else:
                    args = [struct.unpack_from("<Q", data, o)[0] for o in offs]
                engine.fire_event(probe, args, ts, cpu, tid)

        else:
            names = ["ret", "ret"]
            ret_off = fmt.field("ret").offset

            def handler(ts: int, cpu: int, tid: int, data: bytes) -> None:
                (ret,) = _RET.unpack_from(data, ret_off)
                engine.fire_event(probe, [ret, ret], ts, cpu, tid, errno=errno_of(ret))

        term = plan.clause_filter(probe, field_resolver(fmt, names))
        plan.want("syscalls", event, handler, term)

    def _raw(self, plan: Plan, probes: list[Any], entry: bool) -> None:
        engine = plan.engine
        event = "sys_enter" if entry else "sys_exit"
        fmt = tracefs.event_format("raw_syscalls", event)
        by_nr: dict[int, tuple[Any, int]] = {}
        terms: list[str | None] = []
        names = [] if entry else ["ret", "ret"]
        resolve = field_resolver(fmt, names)
        for p in probes:
            nr = getattr(p.data, "nr", None)
            if nr is None:
                continue
            nargs = min(len(getattr(p.data, "args", ()) or ()), 6)
            by_nr[nr] = (p, nargs)
            terms.append(filters.both(f"id == {nr}", plan.clause_filter(p, resolve)))
        if not by_nr:
            return
        term = filters.any_of(terms)
        if _all_calls(by_nr):  # every call: no `id ==` selector, only the predicates
            term = filters.any_of([plan.clause_filter(p, resolve) for p, _ in by_nr.values()])
        id_off = fmt.field("id").offset
        if entry:
            args_off = fmt.field("args").offset

            def handler(ts: int, cpu: int, tid: int, data: bytes) -> None:
                (nr,) = _ID.unpack_from(data, id_off)
                hit = by_nr.get(nr)
                if hit is None:
                    return
                p, nargs = hit
                args = list(_ARGS6.unpack_from(data, args_off))
                for i in range(nargs, 6):  # as the call's own event: only its arguments
                    args[i] = 0
                engine.fire_event(p, args, ts, cpu, tid)

        else:
            ret_off = fmt.field("ret").offset

            def handler(ts: int, cpu: int, tid: int, data: bytes) -> None:
                (nr,) = _ID.unpack_from(data, id_off)
                hit = by_nr.get(nr)
                if hit is None:
                    return
                (ret,) = _RET.unpack_from(data, ret_off)
                engine.fire_event(hit[0], [ret, ret], ts, cpu, tid, errno=errno_of(ret))

        plan.want("raw_syscalls", event, handler, term)


def _all_calls(by_nr: dict[int, Any]) -> bool:
    try:
        from pydtrace.probes.syscalls import table

        return len(by_nr) >= len(table().by_nr)
    except (ImportError, ValueError):
        return False
