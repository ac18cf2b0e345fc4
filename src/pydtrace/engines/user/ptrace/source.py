"""Glue between the tracer and the engine: which syscalls to stop on, and
turning tracer events into probe firings with the traced thread's context."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydtrace.probes.catalogue import ProbeTuple, Provider

# proc provider probes ptrace can see, with the args we give them
PROC_PROBES = ("create", "exec-success", "exit", "lwp-create", "lwp-exit", "signal-handle")


class ProcProvider(Provider):
    name = "proc"

    def probes(self) -> Iterable[ProbeTuple]:
        return [("vmlinux", "", n) for n in PROC_PROBES]


def add_providers(cat: Any) -> None:
    """Put the proc provider, which this engine implements, in the catalogue."""
    if "proc" not in cat.providers:
        cat.add_provider(ProcProvider())


class Sink:
    """Receives tracer events and fires the matching enabled probes."""

    def __init__(self, probes: Iterable[Any], table: Any) -> None:
        self.engine: Any = None  # set once the engine exists
        self.entry_probes: dict[int, Any] = {}
        self.return_probes: dict[int, Any] = {}
        self.proc_probes: dict[str, Any] = {}
        for p in probes:
            if p.provider == "syscall":
                sys = table.by_name.get(p.function) if table is not None else None
                if sys is None:
                    continue
                (self.entry_probes if p.name == "entry" else self.return_probes)[sys.nr] = p
            elif p.provider == "proc":
                self.proc_probes[p.name] = p

    def traced_numbers(self) -> set[int]:
        return set(self.entry_probes) | set(self.return_probes)

    def entry(self, t: Any, nr: int, args: tuple[int, ...]) -> None:
        p = self.entry_probes.get(nr)
        if p is not None:
            self.engine.fire_traced(p, list(args), t, 0)

    def exit(self, t: Any, nr: int, rval: int) -> None:
        p = self.return_probes.get(nr)
        if p is not None:
            err = -rval if -4095 <= rval <= -1 else 0
            self.engine.fire_traced(p, [rval, rval], t, err)

    def proc(self, kind: str, t: Any, args: list[int]) -> None:
        p = self.proc_probes.get(kind)
        if p is not None:
            self.engine.fire_traced(p, args, t, 0)
