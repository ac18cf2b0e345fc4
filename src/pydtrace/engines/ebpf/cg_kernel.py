"""Kernel objects D names directly: `symbols (kallsyms addresses, typed from
BTF) and per-CPU variables (BTF's VARs, whose address differs per CPU).

A per-CPU variable lives at its offset in the per-CPU section plus the
running CPU's per-CPU offset. Typed ksyms (the verifier's own way to that
address) need the variable in kallsyms, which a kernel without
CONFIG_KALLSYMS_ALL lacks; so the offset is found through the scheduler: the
current task's CFS run queue points to its CPU's `struct rq`, the per-CPU
variable `runqueues`, and that address less runqueues' section offset is
where this CPU's copy of the per-CPU section starts. It is checked before
use: the per-CPU variable `cpu_number` found from there must hold the number
of the CPU the probe runs on; anything else faults "invalid address".
"""

from __future__ import annotations

from pydtrace.engines.ebpf.cg_context import BADADDR, CompilerBase, LoweringError, Value
from pydtrace.engines.ebpf.insn import R0
from pydtrace.lang import types as T
from pydtrace.lang.program import KernelSymbol
from pydtrace.lang.types import CType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _percpu_layout() -> tuple[int, int, int, int]:
    """(offset of task_struct.se.cfs_rq, of cfs_rq.rq, runqueues' and
    cpu_number's per-CPU section offsets) from BTF."""
    from pydtrace.symbols.btf import VAR, BTFError, vmlinux

    try:
        b = vmlinux()
        cfs = b.resolve_path("task_struct", "se", "cfs_rq")[0].offset
        rq = b.resolve_path("cfs_rq", "rq")[0].offset
        offsets = []
        for name in ("runqueues", "cpu_number"):
            var = b.find_symbol(name, VAR)
            where = b.datasec_offset(var) if var is not None else None
            if where is None:
                raise BTFError(f"BTF has no per-CPU variable {name}")
            offsets.append(where[1])
        return cfs, rq, offsets[0], offsets[1]
    except (OSError, BTFError) as e:
        raise LoweringError(
            f"the eBPF engine cannot find this CPU's per-CPU variables on this kernel: {e}"
        ) from None


class KernelMixin(CompilerBase):
    def ksym_address(self, sym: KernelSymbol, t: CType) -> Value:
        """The address of a `symbol: a constant, or this CPU's copy of a per-CPU variable."""
        if not sym.percpu:
            return self.const(sym.address, T.pointer(t))  # type: ignore[attr-defined]
        cfs, rq, runqueues, cpu_number = _percpu_layout()
        a = self.a
        v = self.alloc(T.pointer(t))
        check = self.alloc(T.UINT)
        self.current_task(v.reg)
        self.kernel_load(v.reg, v.reg, cfs, 8)  # type: ignore[attr-defined]
        self.kernel_load(v.reg, v.reg, rq, 8)  # type: ignore[attr-defined]
        a.alu("-", v.reg, imm=runqueues)
        self.kernel_load(check.reg, v.reg, cpu_number, 4)  # type: ignore[attr-defined]
        a.call("get_smp_processor_id")
        ok = a.new_label("pcpu")
        a.jmp("==", check.reg, ok, src=R0)
        a.movi(R0, 0)
        self.fault(BADADDR, R0)
        a.place(ok)
        self.free(check)
        if sym.address:
            a.alu("+", v.reg, imm=sym.address)
        return v

    def ksym_value(self, e: Any) -> Value:
        """The value of a `symbol: read from kernel memory (a struct's address)."""
        return self.load_lvalue(e)  # type: ignore[attr-defined]
