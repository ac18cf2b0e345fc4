"""The sched provider's probes (eBPF engine only: scheduler tracepoints,
engines/ebpf/cg_proc.py; docs/proc-sched.md)."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydtrace.probes.catalogue import PROVIDER_ATTRIBUTES
from pydtrace.probes.proc import TableProvider

# dtrace's cpuinfo_t (sched.d); cpu_info, a kernel pointer there, stays 0 here
_SOURCE = """
typedef struct cpuinfo {
    int cpu_id;
    int cpu_pset;
    int cpu_chip;
    int cpu_lgrp;
    uintptr_t cpu_info;
} cpuinfo_t;
"""


@cache
def library_types() -> dict[str, Any]:
    """cpuinfo_t and struct cpuinfo as CTypes."""
    from pydtrace.lang.checker import Checker
    from pydtrace.lang.parser import parse

    checker = Checker(lambda text, line: [])
    checker.check(parse(_SOURCE, from_file=True))
    return {
        "cpuinfo_t": checker.typedefs["cpuinfo_t"],
        "struct cpuinfo": checker.tags["struct cpuinfo"],
    }


# probe name -> dtrace's argument types (those Linux's tracepoints can give)
SCHED_ARGS: dict[str, tuple[str, ...]] = {
    "dequeue": ("lwpsinfo_t *", "psinfo_t *", "cpuinfo_t *", "int"),
    "enqueue": ("lwpsinfo_t *", "psinfo_t *", "cpuinfo_t *"),
    "off-cpu": ("lwpsinfo_t *", "psinfo_t *"),
    "on-cpu": (),
    "preempt": (),
    "remain-cpu": (),
    "sleep": (),
    "surrender": ("lwpsinfo_t *", "psinfo_t *"),
    "tick": ("lwpsinfo_t *", "psinfo_t *"),
    "wakeup": ("lwpsinfo_t *", "psinfo_t *"),
}


class SchedProvider(TableProvider):
    name = "sched"
    attributes = PROVIDER_ATTRIBUTES["sched"]
    table = SCHED_ARGS
