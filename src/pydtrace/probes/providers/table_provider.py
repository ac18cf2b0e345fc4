"""TableProvider: a provider of fixed probes `<name>:vmlinux::<probe>` whose
arguments are procfs types (psinfo_t *, lwpsinfo_t *, cpuinfo_t *), int or
string, named in a table (proc.py, sched.py)."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from pydtrace.probes.catalogue import ProbeTuple, Provider
from pydtrace.probes.glob import gmatch

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MODULE = "vmlinux"


def ctype(text: str) -> Any:
    """The CType of an argument type named in a provider's table."""
    from pydtrace.lang import types as T
    from pydtrace.lang.checker import library_types

    if text == "string":
        return T.STRING
    if text == "int":
        return T.INT
    return T.pointer(library_types()[text.rstrip(" *")])


@cache
def _argtypes(provider: type[TableProvider], name: str) -> tuple[Any, ...]:
    # one tuple per probe: a clause on several probes has typed args[] only
    # when they share the type objects (the checker compares them)
    return tuple(ctype(a) for a in provider.table[name])


class TableProvider(Provider):
    """Probes made when a description can match them (so programs naming other
    providers do not pay for checking the procfs types)."""

    table: dict[str, tuple[str, ...]] = {}  # probe name -> argument types, in id order

    def expand(
        self, module: str, function: str, name: str, types: bool = True
    ) -> Iterable[ProbeTuple]:
        if not gmatch(module, MODULE) or not gmatch(function, ""):
            return
        if any(gmatch(name, probe) for probe in self.table):
            # all at once: ids (and so firing order) do not depend on the program
            for probe in self.table:
                yield (MODULE, "", probe, _argtypes(type(self), probe))
