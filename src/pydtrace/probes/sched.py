"""The sched provider's probes (eBPF engine only: scheduler tracepoints,
engines/ebpf/cg_proc.py; docs/proc-sched.md)."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydtrace.probes.catalogue import PROVIDER_ATTRIBUTES
from pydtrace.probes.proc import TableProvider


@cache
def library_types() -> dict[str, Any]:
    """cpuinfo_t and struct cpuinfo as CTypes (D's library: lang/procfs.py)."""
    from pydtrace.lang.checker import library_types as procfs_types

    lib = procfs_types()
    return {"cpuinfo_t": lib["cpuinfo_t"], "struct cpuinfo": lib["struct cpuinfo"]}


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
