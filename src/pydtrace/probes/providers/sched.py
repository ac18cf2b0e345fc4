"""The sched provider's probes (eBPF engine only: scheduler tracepoints,
engines/ebpf/providers/sched.py; docs/internals/proc-sched.md)."""

from __future__ import annotations

from pydtrace.probes.catalogue import PROVIDER_ATTRIBUTES
from pydtrace.probes.providers.table_provider import TableProvider

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
