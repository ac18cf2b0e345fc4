"""The proc provider's probes: names and dtrace's argument types, shared by
the ptrace engine (fired from ptrace events, engines/user/ptrace) and the eBPF
engine (kernel tracepoints, engines/ebpf/cg_proc.py). docs/proc-sched.md
maps each probe to what fires it."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

from pydtrace.probes.catalogue import PROVIDER_ATTRIBUTES, ProbeTuple, Provider
from pydtrace.probes.glob import gmatch

MODULE = "vmlinux"

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


def ctype(text: str) -> Any:
    """The CType of an argument type named in PROC_ARGS (or sched's table)."""
    from pydtrace.lang import types as T
    from pydtrace.lang.checker import library_types

    if text == "string":
        return T.STRING
    if text == "int":
        return T.INT
    if text == "cpuinfo_t *":
        from pydtrace.probes.sched import library_types as sched_types

        return T.pointer(sched_types()["cpuinfo_t"])
    return T.pointer(library_types()[text.rstrip(" *")])


@cache
def _argtypes(table: str, name: str) -> tuple[Any, ...]:
    from pydtrace.probes.sched import SCHED_ARGS

    args = (PROC_ARGS if table == "proc" else SCHED_ARGS)[name]
    return tuple(ctype(a) for a in args)


class TableProvider(Provider):
    """A provider of fixed probes `<name>:vmlinux::<probe>`, made when a
    description can match them (so programs naming other providers do not
    pay for checking the procfs types)."""

    table: dict[str, tuple[str, ...]] = {}

    def expand(
        self, module: str, function: str, name: str, types: bool = True
    ) -> Iterable[ProbeTuple]:
        if not gmatch(module, MODULE) or not gmatch(function, ""):
            return
        if any(gmatch(name, probe) for probe in self.table):
            # all at once: ids (and so firing order) do not depend on the program
            for probe in self.table:
                yield (MODULE, "", probe, _argtypes(self.name, probe))


class ProcProvider(TableProvider):
    name = "proc"
    attributes = PROVIDER_ATTRIBUTES["proc"]
    table = PROC_ARGS
