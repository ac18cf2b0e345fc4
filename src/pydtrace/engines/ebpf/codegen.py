"""Code generation facade: a checked D program becomes BPF programs.

The generator lives in the cg_* modules (see docs/ebpf-engine.md):
cg_context (shared state, temporaries), cg_program (programs, clauses),
cg_expr, cg_vars, cg_strings, cg_actions, cg_aggs. Callers import from here.
"""

from __future__ import annotations

from pydtrace.engines.ebpf.cg_context import (
    DROP_AGG,
    DROP_DBLERROR,
    DROP_DYN,
    DROP_RING,
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
from pydtrace.engines.ebpf.cg_program import Compiler, compile_program, disassemble_program

__all__ = [
    "DROP_AGG",
    "DROP_DBLERROR",
    "DROP_DYN",
    "DROP_RING",
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
