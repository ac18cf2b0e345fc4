"""sdt:<group>::<event> on the eBPF engine: a TRACEPOINT program on the
tracepoint. The prologue copies the record's fixed part into the argument
area (tracepoint_area.py; 8-byte loads from the context at 8-aligned offsets,
which the verifier accepts for any offset below the trace size limit), reads
each `__data_loc` string after it with probe_read_kernel_str, and sets
args[N] to a scalar field's value or the address of an array / string;
`args` is the address of the struct (probes/providers/sdt.py types it).
"""

from __future__ import annotations

from pydtrace.engines.ebpf.cg_context import MAX_ARGS
from pydtrace.engines.ebpf.insn import R1, R2, R3, R4, R6, R9
from pydtrace.engines.ebpf.providers import tracepoint_area
from pydtrace.engines.ebpf.providers.base import EbpfProvider
from pydtrace.probes.providers.sdt import DATA_LOC_SIZE

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_RECORD = 2048  # PERF_MAX_TRACE_SIZE: the context bytes a program may read


class SdtProvider(EbpfProvider):
    name = "sdt"

    def attach(self, probe: Any) -> tuple[int, tuple[Any, ...]]:
        return tracepoint_area.attach(probe, probe.data.group, probe.data.event)

    def args_area(self, probe: Any) -> int:
        return probe.data.args.size

    def prologue(self, cg: Any, probe: Any, clauses: list[Any]) -> None:
        if cg.wants_args:
            _sdt(cg, probe.data.args)

    def builtin(self, cg: Any, name: str, t: Any) -> Any:
        if name == "args":  # args->field: the address of the argument struct
            return cg.const(tracepoint_area.region(cg).vaddr, t)
        return super().builtin(cg, name, t)


def _sdt(cg: Any, info: Any) -> None:
    a = cg.a
    r = tracepoint_area.region(cg)
    base = r.off
    # the first 8 bytes (common_*) are not the program's to read, and reading
    # past the record's end makes attaching fail (EACCES): aligned loads up to it
    end = min(info.record_size, MAX_RECORD)
    off = 8
    while off < end:
        step = next(k for k in (8, 4, 2, 1) if k <= end - off and off % k == 0)
        a.ldx(step, R1, R6, off)
        a.stx(step, R9, base + off, R1)
        off += step
    for f in info.fields:
        if f.kind != "string":
            continue
        dst = base + f.mem_off
        a.st(1, R9, dst, 0)
        empty = a.new_label("noloc")
        a.ldx(4, R3, R9, base + f.rec_off)  # offset | length << 16
        a.mov(R4, R3)
        a.alu(">>", R4, imm=16)
        a.jmp("==", R4, empty, imm=0)
        a.alu("&", R3, imm=0xFFFF)
        if f.rel_loc:  # relative to the end of the field
            a.alu("+", R3, imm=f.rec_off + f.size)
        a.alu("+", R3, R6)
        a.mov(R1, R9)
        a.alu("+", R1, imm=dst)
        a.movi(R2, DATA_LOC_SIZE)
        a.call("probe_read_kernel_str")
        a.place(empty)
    fa = cg.f_args
    for i, f in enumerate(info.fields[:MAX_ARGS]):
        if f.kind == "int" and f.size in (1, 2, 4, 8):
            a.ldx(f.size, R1, R9, base + f.rec_off)
            if f.signed:
                cg.wrap(R1, f.ctype)
        elif f.kind == "array":
            a.ld_imm64(R1, r.vaddr + f.rec_off)
        elif f.kind == "string":
            a.ld_imm64(R1, r.vaddr + f.mem_off)
        else:
            continue
        a.stx(8, R9, fa + 8 * i, R1)
