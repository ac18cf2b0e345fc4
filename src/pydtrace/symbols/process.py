"""A process's symbols: its mappings (/proc/PID/maps) and the ELF files
mapped in, so a user address resolves to (object, function, offset).

A snapshot is taken the first time a pid is asked about and kept, so a
process that has exited by the time its output is printed still resolves
(the consumer asks as soon as a record or aggregation key names it).
Addresses resolve through the mapping's file offset: PIE executables and
shared libraries need no other bias.

A process too short-lived for that (gone before its first record is read)
resolves through the kernel's own account of its mappings: the eBPF engine
feeds every exec, fork and executable mmap in the system to note_exec,
note_fork and note_mmap (engines/ebpf/mmaps.py), as perf record does. They
also keep snapshots up to date with libraries loaded later (dlopen).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable

from pydtrace.lang.dataclass import dataclass


@dataclass(frozen=True)
class Mapping:
    start: int
    end: int
    offset: int
    path: str


class ProcessSymbols:
    def __init__(self, pid: int, read: bool = True) -> None:
        self.pid = pid
        self.maps: list[Mapping] = []
        # executable ranges ([start, end)) of the snapshot: file text and anonymous
        # code ([vdso], JIT); None when only mapping events were seen (text only)
        self.code: list[tuple[int, int]] | None = None
        if not read:
            return
        code: list[tuple[int, int]] = []
        try:
            with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as f:
                for line in f:
                    parts = line.split(maxsplit=5)
                    if len(parts) < 5:
                        continue
                    lo, hi = (int(x, 16) for x in parts[0].split("-"))
                    if "x" in parts[1]:
                        code.append((lo, hi))
                    if len(parts) < 6 or not parts[5].startswith("/"):
                        continue
                    path = parts[5].rstrip("\n")
                    if path.endswith(" (deleted)"):
                        path = path[: -len(" (deleted)")]
                    self.maps.append(Mapping(lo, hi, int(parts[2], 16), path))
        except OSError:
            return  # gone before we looked: addresses print raw
        self.code = code

    def mapping(self, addr: int) -> Mapping | None:
        found = self._find(addr)
        if found is None and _catch_up():  # an mmap not read yet: read them, once
            # the events may have replaced this snapshot (an exec, a new process
            # that has the pid of an old one): ask the pid's current one
            found = process_symbols(self.pid)._find(addr)
        return found

    def is_code(self, addr: int) -> bool | None:
        """Does addr lie in executable memory of the process? None when nothing
        is known of it (no snapshot, no events)."""
        if self.code is not None:
            if any(lo <= addr < hi for lo, hi in self.code):
                return True
            _catch_up()  # mapped since the snapshot? (events feed add())
            return any(lo <= addr < hi for lo, hi in process_symbols(self.pid).code or ())
        if not self.maps:
            return None
        return self.mapping(addr) is not None  # events name executable file mappings only

    def _find(self, addr: int) -> Mapping | None:
        for m in self.maps:
            if m.start <= addr < m.end:
                return m
        return None

    def add(self, m: Mapping) -> None:
        """A new mapping: it replaces what it overlaps (newest first)."""
        if m not in self.maps:
            self.maps = [m, *(x for x in self.maps if x.end <= m.start or x.start >= m.end)]
            if self.code is not None:  # events name executable mappings (a dlopen since)
                self.code.append((m.start, m.end))

    def object_start(self, path: str) -> int:
        """The lowest address at which path is mapped."""
        return min(m.start for m in self.maps if m.path == path)

    def lookup(self, addr: int) -> tuple[str, str | None, int]:
        """(object basename, function or None, offset from the function,
        or the address itself when no function holds it); ("", None, addr)
        outside any file mapping."""
        from pydtrace.symbols.elf import ElfError, open_elf  # ELF reading: only on use

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
# pids seen only through events (not asked about yet): the mappings since
# their exec (or since tracing began), kept for the most recent pids
_events: OrderedDict[int, ProcessSymbols] = OrderedDict()
EVENT_PIDS = 8192
# readers of the events waiting in the kernel, one per running eBPF session;
# each returns True if there were any (mmaps.py)
_catch_ups: list[Callable[[], bool]] = []


def process_symbols(pid: int) -> ProcessSymbols:
    """The snapshot of pid's mappings, taken on first use and kept: from
    /proc while the process lives, else from the events noted for it."""
    p = _procs.get(pid)
    if p is None:
        p = ProcessSymbols(pid)
        noted = _events.pop(pid, None)
        if not p.maps and noted is not None:
            p = noted
        _procs[pid] = p
    return p


def refresh(pid: int) -> None:
    """Take pid's snapshot again if it can be read (a -c command after its
    exec): aggregation keys are read at the end, when it may be gone."""
    p = ProcessSymbols(pid)
    if p.maps:
        _procs[pid] = p


_preloaded: set[str] = set()


def preload(pid: int) -> None:
    """Read the symbol tables of the files pid has mapped, once each, while
    the tracer is idle: its stacks then print without that wait at the end
    (libc with its debug symbols is some 20 ms)."""
    from pydtrace.symbols.elf import ElfError, open_elf

    p = _procs.get(pid)
    for path in {m.path for m in p.maps} if p is not None else ():
        if path not in _preloaded:
            _preloaded.add(path)
            try:
                open_elf(path).function_at(0)
            except (ElfError, OSError, ValueError):
                pass  # not ELF (a locale archive...): nothing to read


def _noted(pid: int) -> ProcessSymbols:
    p = _procs.get(pid) or _events.get(pid)
    if p is None:
        p = _events[pid] = ProcessSymbols(pid, read=False)
        if len(_events) > EVENT_PIDS:
            _events.popitem(last=False)
    return p


def note_mmap(pid: int, start: int, length: int, offset: int, path: str) -> None:
    """The kernel mapped part of a file executable in pid."""
    if path.startswith("/"):
        _noted(pid).add(Mapping(start, start + length, offset, path))


def forget(pid: int) -> None:
    """pid is a new process, or runs a new image: what was kept of it (of
    another process that had the pid before, or of the image before exec)
    no longer holds (the ptrace engine sees these events itself)."""
    _procs.pop(pid, None)
    _events.pop(pid, None)


def note_exec(pid: int) -> None:
    """pid ran exec: its old mappings are gone (the new image's follow)."""
    _procs.pop(pid, None)
    _events.pop(pid, None)
    _noted(pid)


def note_fork(parent: int, child: int) -> None:
    """A new process starts with its parent's mappings."""
    p = _procs.get(parent) or _events.get(parent)
    if p is not None and child not in _procs:
        c = _noted(child)
        c.maps = list(p.maps)


def add_catch_up(fn: Callable[[], bool]) -> None:
    """A session's reader of mapping events, asked when an address is in no
    known mapping (several sessions may run at once, each with its own)."""
    _catch_ups.append(fn)


def remove_catch_up(fn: Callable[[], bool]) -> None:
    _catch_ups.remove(fn)


def _catch_up() -> bool:
    """Read every session's waiting events; True if any were read."""
    return any([read() for read in list(_catch_ups)])
