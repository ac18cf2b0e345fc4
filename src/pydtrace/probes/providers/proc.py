"""The proc provider's probes: names and dtrace's argument types, shared by
the ptrace engine (fired from ptrace events, engines/user/providers/proc.py)
and the eBPF engine (kernel tracepoints, engines/ebpf/providers/proc.py).
docs/internals/proc-sched.md maps each probe to what fires it."""

from __future__ import annotations

from pydtrace.probes.catalogue import PROVIDER_ATTRIBUTES
from pydtrace.probes.providers.table_provider import TableProvider

# probe name -> dtrace's argument types. The order is the probes' ids, and
# the eBPF engine attaches programs in id order: probes sharing a tracepoint
# fire in it (start before lwp-start in a new process, lwp-exit before exit).
PROC_ARGS: dict[str, tuple[str, ...]] = {
    "create": ("psinfo_t *",),
    "exec": ("string",),
    "exec-failure": ("int",),
    "exec-success": (),
    "lwp-create": ("lwpsinfo_t *", "psinfo_t *"),
    "lwp-exit": (),
    "exit": ("int",),
    "signal-clear": ("int",),
    "signal-discard": ("lwpsinfo_t *", "psinfo_t *", "int"),
    "signal-handle": ("int",),
    "signal-send": ("lwpsinfo_t *", "psinfo_t *", "int"),
    "start": (),
    "lwp-start": (),
}


class ProcProvider(TableProvider):
    name = "proc"
    attributes = PROVIDER_ATTRIBUTES["proc"]
    table = PROC_ARGS
