"""USDT probes from .note.stapsdt (sys/sdt.h) as `<provider><pid>:module:function:name`.

A `__` in a note's probe name is a `-` in D (`python:::function-entry` for the
note `function__entry`), as `dtrace -h` writes a D name's hyphens as double
underscores in the C macros. The function is the ELF function holding the
probe's pc; the semaphore (when the
probe has one) is counted up by the kernel while the uprobe is attached (the
uprobe PMU's ref_ctr_offset). Arguments are the note's strings (`-4@%edi`),
decoded at firing time by engines/ebpf/providers/usdt.py.
"""

from __future__ import annotations

from pydtrace.probes.catalogue import Provider
from pydtrace.probes.glob import gmatch
from pydtrace.probes.process import Obj, UprobeSpec, module_matches
from pydtrace.symbols.elf import ElfError, open_elf


class UsdtProvider(Provider):
    kind = "usdt"
    per_process = True

    def __init__(self, provider: str, pid: int, probes: list[tuple]) -> None:
        self.name = f"{provider}{pid}"
        self.pid = pid
        self._probes = probes  # (Obj, function, name, UprobeSpec)

    def expand(
        self, module: str, function: str, name: str, types: bool = True, strict: bool = False
    ) -> list[tuple]:
        return [
            (obj.name, fn, n, None, spec)
            for obj, fn, n, spec in self._probes
            if module_matches(module, obj)
            and gmatch(function or "*", fn)
            and gmatch(name or "*", n)
        ]


def usdt_providers(pid: int, objs: list[Obj], held: bool = False) -> list[UsdtProvider]:
    """One provider per stapsdt provider name found in the process's objects
    (held: a -c child held before exec, UprobeSpec.held)."""
    found: dict[str, list[tuple]] = {}
    for obj in objs:
        try:
            elf = open_elf(obj.path)
            notes = elf.stapsdt()
        except ElfError:
            continue
        for p in notes:
            try:
                off = elf.addr_to_offset(p.pc)
                refctr = elf.addr_to_offset(p.semaphore) if p.semaphore else 0
            except ElfError:
                continue
            fn = elf.function_at(p.pc)
            spec = UprobeSpec(pid, obj.path, off, refctr=refctr, usdt_args=tuple(p.args.split()),
                              held=held)  # fmt: skip
            name = p.name.replace("__", "-")
            found.setdefault(p.provider, []).append((obj, fn.name if fn else "", name, spec))
    return [UsdtProvider(prov, pid, probes) for prov, probes in found.items()]
