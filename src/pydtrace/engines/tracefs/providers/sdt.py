"""sdt:<group>::<event> on the tracefs engine: the event itself. Each firing
builds the argument struct the catalogue types (probes/providers/sdt.py), as
the eBPF engine's prologue does: the record's fixed part at its offsets (the
common_* header left 0), each __data_loc string after it (at most
DATA_LOC_SIZE - 1 bytes); `args` is its address in the interpreter's memory,
args[N] a scalar field's value or the address of an array or string."""

from __future__ import annotations

import struct

from pydtrace.engines.tracefs.decode import data_loc
from pydtrace.engines.tracefs.plan import Plan, field_resolver
from pydtrace.engines.tracefs.providers.base import TracefsProvider
from pydtrace.probes.providers.sdt import DATA_LOC_SIZE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_INT = {(1, False): "<B", (1, True): "<b", (2, False): "<H", (2, True): "<h",
        (4, False): "<I", (4, True): "<i", (8, False): "<Q", (8, True): "<q"}  # fmt: skip
COMMON = 8  # the common_* header: not the program's to read


class SdtProvider(TracefsProvider):
    name = "sdt"

    def enable(self, plan: Plan, probes: list[Any]) -> None:
        for p in probes:
            info = p.data.args
            group, event = p.data.group, p.data.event
            handler = _handler(plan.engine, p, info)
            fmt_names = [f.name for f in info.fields]
            # the format is read again by want(): the resolver needs it first
            from pydtrace.probes import tracefs

            fmt = tracefs.event_format(group, event)
            term = plan.clause_filter(p, field_resolver(fmt, fmt_names))
            plan.want(group, event, handler, term)


def _handler(engine: Any, probe: Any, info: Any) -> Any:
    """A record -> the argument struct's bytes and args[]."""
    size = info.size
    fixed = min(info.record_size, size)
    # args[N]: ("int", offset, struct), ("addr", offset in the struct) or ("none",)
    plan: list[tuple[Any, ...]] = []
    strings = []
    for f in info.fields[:10]:
        if f.kind == "int" and (f.size, f.signed) in _INT:
            plan.append(("int", f.rec_off, struct.Struct(_INT[(f.size, f.signed)])))
        elif f.kind == "array":
            plan.append(("addr", f.rec_off))
        elif f.kind == "string":
            plan.append(("addr", f.mem_off))
        else:
            plan.append(("none",))
    for f in info.fields:
        if f.kind == "string":
            strings.append((f.rec_off, f.size, f.rel_loc, f.mem_off))
    wants = engine.wants_args(probe)

    def handler(ts: int, cpu: int, tid: int, data: bytes) -> None:
        if not wants:
            engine.fire_event(probe, [], ts, cpu, tid)
            return
        buf = bytearray(size)
        n = min(fixed, len(data))
        buf[COMMON:n] = data[COMMON:n]
        for rec_off, fsize, rel, mem_off in strings:
            s = data_loc(data, rec_off, fsize, rel)[: DATA_LOC_SIZE - 1]
            buf[mem_off : mem_off + len(s)] = s
        args: list[int] = []

        def fill(base: int) -> None:
            for how in plan:
                if how[0] == "int":
                    args.append(how[2].unpack_from(data, how[1])[0])
                elif how[0] == "addr":
                    args.append(base + how[1])
                else:
                    args.append(0)

        engine.fire_event(probe, args, ts, cpu, tid, struct_bytes=bytes(buf), fill=fill)

    return handler
