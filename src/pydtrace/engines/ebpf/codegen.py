"""Code generation: a checked D program becomes BPF programs.

`Compiler` below is the whole generator: the lowering parts (mixins over one
shared state, cg_context.CompilerBase) listed in one place. The other parts:

- cg_context: shared state, constants, specs (MapSpec, ProgSpec, Compiled),
  values and temporaries
- cg_queries: questions asked of the AST before lowering (which builtin
  variables a clause names, whether it reads arguments, ...)
- cg_subroutines: the subroutine table (name -> lowering function), with the
  lowerings of cg_string_subroutines and cg_int_subroutines
- cg_kernel: `symbols and per-CPU variables; cg_files: fds[], d_path() (parts of Compiler)
- cg_proc, cg_tracepoint, cg_uprobe, cg_vtime: provider-specific attaching,
  prologues and builtin variables

See docs/internals/ebpf-engine.md. Callers import from here.
"""

from __future__ import annotations

from pydtrace.engines.ebpf.cg_actions import ActionsMixin
from pydtrace.engines.ebpf.cg_aggs import AggsMixin
from pydtrace.engines.ebpf.cg_context import (
    DROP_AGG,
    DROP_DBLERROR,
    DROP_DYN,
    DROP_RING,
    DROP_SWITCH,
    DROP_WORDS,
    MAP_ARRAY,
    MAP_HASH,
    MAP_PERCPU_ARRAY,
    MAP_PERCPU_HASH,
    MAP_RINGBUF,
    PROG_PERF_EVENT,
    PROG_RAW_TRACEPOINT,
    PROG_TRACEPOINT,
    RAW_SYSCALL_MIN,
    Compiled,
    MapSpec,
    ProgSpec,
)
from pydtrace.engines.ebpf.cg_expr import ExprMixin
from pydtrace.engines.ebpf.cg_files import FilesMixin
from pydtrace.engines.ebpf.cg_kernel import KernelMixin
from pydtrace.engines.ebpf.cg_memory import MemoryMixin
from pydtrace.engines.ebpf.cg_program import ProgramMixin
from pydtrace.engines.ebpf.cg_stack import StackMixin
from pydtrace.engines.ebpf.cg_strings import StringsMixin
from pydtrace.engines.ebpf.cg_vars import VarsMixin
from pydtrace.engines.ebpf.insn import disassemble
from pydtrace.lang.program import CheckedProgram

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "DROP_AGG",
    "DROP_DBLERROR",
    "DROP_DYN",
    "DROP_RING",
    "DROP_SWITCH",
    "DROP_WORDS",
    "MAP_ARRAY",
    "MAP_HASH",
    "MAP_PERCPU_ARRAY",
    "MAP_PERCPU_HASH",
    "MAP_RINGBUF",
    "PROG_PERF_EVENT",
    "PROG_RAW_TRACEPOINT",
    "PROG_TRACEPOINT",
    "RAW_SYSCALL_MIN",
    "Compiled",
    "Compiler",
    "MapSpec",
    "ProgSpec",
    "compile_program",
    "disassemble_program",
]


class Compiler(
    # the whole program: maps, one BPF program per probe, prologues, clauses,
    # statements, record output, fault blocks, ERROR (it overrides builtin()
    # for timestamps and new_action() for the action mask, calling super())
    ProgramMixin,
    ActionsMixin,  # recording actions (trace, printf, exit...) and speculations
    AggsMixin,  # aggregations: keys, per-CPU values, quantize buckets
    StackMixin,  # stack()/ustack(), caller, uregs[], sym()/usym()...
    VarsMixin,  # globals, this->, self->, associative arrays, stores
    StringsMixin,  # string buffers, literals, copies, comparisons
    ExprMixin,  # expressions: dispatch, builtin variables, operators, casts, calls
    MemoryMixin,  # alloca scratch, loads and stores through pointers, members
    KernelMixin,  # `symbols and per-CPU variables
    FilesMixin,  # fds[] and d_path(): files from the task's file table
):
    """The code generator: its parts over one shared state (CompilerBase)."""


def compile_program(
    prog: CheckedProgram, options: dict[str, Any], held: tuple[int, ...] = ()
) -> Compiled:
    """The maps and BPF programs of a checked program; LoweringError when
    the eBPF engine cannot compile it. `held`: the -c children waiting to exec."""
    return Compiler(prog, options, held).compile()


def disassemble_program(compiled: Compiled) -> str:
    """The generated programs as `dtrace -S` shows them: one block per probe."""
    out = []
    for p in compiled.progs:
        out.append(f"\nDisassembly of {p.name} ({p.probe.fqn}):\n")
        out.append(disassemble(p.insns))
    return "".join(out)
