"""A process's symbols: its mappings (/proc/PID/maps) and the ELF files
mapped in, so a user address resolves to (object, function, offset).

A snapshot is taken the first time a pid is asked about and kept, so a
process that has exited by the time its output is printed still resolves
(the consumer asks as soon as a record or aggregation key names it).
Addresses resolve through the mapping's file offset: PIE executables and
shared libraries need no other bias.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pydtrace.symbols.elf import ElfError, open_elf


@dataclass(frozen=True)
class Mapping:
    start: int
    end: int
    offset: int
    path: str


class ProcessSymbols:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.maps: list[Mapping] = []
        try:
            with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as f:
                for line in f:
                    parts = line.split(maxsplit=5)
                    if len(parts) < 6 or not parts[5].startswith("/"):
                        continue
                    lo, hi = (int(x, 16) for x in parts[0].split("-"))
                    path = parts[5].rstrip("\n")
                    if path.endswith(" (deleted)"):
                        path = path[: -len(" (deleted)")]
                    self.maps.append(Mapping(lo, hi, int(parts[2], 16), path))
        except OSError:
            pass  # gone before we looked: addresses print raw

    def mapping(self, addr: int) -> Mapping | None:
        for m in self.maps:
            if m.start <= addr < m.end:
                return m
        return None

    def object_start(self, path: str) -> int:
        """The lowest address at which path is mapped."""
        return min(m.start for m in self.maps if m.path == path)

    def lookup(self, addr: int) -> tuple[str, str | None, int]:
        """(object basename, function or None, offset from the function,
        or the address itself when no function holds it); ("", None, addr)
        outside any file mapping."""
        m = self.mapping(addr)
        if m is None:
            return "", None, addr
        obj = os.path.basename(m.path)
        try:
            elf = open_elf(m.path)
            vaddr = elf.offset_to_addr(addr - m.start + m.offset)
            sym = elf.function_at(vaddr)
        except (ElfError, OSError):
            return obj, None, addr
        if sym is None:
            return obj, None, addr
        return obj, sym.name, vaddr - sym.addr


_procs: dict[int, ProcessSymbols] = {}


def process_symbols(pid: int) -> ProcessSymbols:
    """The snapshot of pid's mappings, taken on first use and kept."""
    p = _procs.get(pid)
    if p is None:
        p = _procs[pid] = ProcessSymbols(pid)
    return p


def refresh(pid: int) -> None:
    """Take pid's snapshot again if it can be read (a -c command after its
    exec): aggregation keys are read at the end, when it may be gone."""
    p = ProcessSymbols(pid)
    if p.maps:
        _procs[pid] = p
