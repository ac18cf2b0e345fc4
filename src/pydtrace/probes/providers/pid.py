"""The pid provider: `pid<N>:module:function:entry|return|<hex offset>`.

Probes are made on demand for one process: Catalogue.match() has the
process's providers added (probes/providers/__init__.py) for a description
whose provider ends in digits (`pid$target` is `pid1234` by then; `p*d1234`
works too). Every probe carries a UprobeSpec (probes/process.py): what the
eBPF engine needs to attach and decode it.
"""

from __future__ import annotations

import re

from pydtrace.lang.errors import DError
from pydtrace.probes.catalogue import Provider
from pydtrace.probes.glob import gmatch, is_glob
from pydtrace.probes.process import Obj, UprobeSpec, module_matches
from pydtrace.symbols import x86
from pydtrace.symbols.elf import ElfError, open_elf

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class PidProvider(Provider):
    """pid<N>: entry, return and function+offset probes on uprobes."""

    kind = "pid"
    per_process = True

    def __init__(self, pid: int, objs: list[Obj], held: bool = False) -> None:
        self.name = f"pid{pid}"
        self.pid = pid
        self.objs = objs
        self.held = held  # a -c child held before exec (UprobeSpec.held)

    def expand(
        self, module: str, function: str, name: str, types: bool = True, strict: bool = False
    ) -> list[tuple]:
        """Probes for module/function/name; strict (a description naming this
        process) reports a name that can never be a pid probe."""
        valid = not name or is_glob(name) or name in ("entry", "return")
        if not valid and not re.fullmatch(r"[0-9a-fA-F]+", name):
            if strict:
                raise DError(
                    "D_PROC_NAME",
                    f"invalid probe name '{name}' (pid probes are entry, return or a "
                    "hexadecimal offset)",
                )
            return []
        if function == "-":
            return self._address(module, name, strict)
        out: list[tuple] = []
        for obj in self.objs:
            if not module_matches(module, obj):
                continue
            try:
                elf = open_elf(obj.path)
                funcs = elf.functions()
            except ElfError:
                continue
            done: set[int] = set()
            one_function = bool(function) and not is_glob(function)
            if strict and one_function and module and not is_glob(module):
                if not any(s.name == function for s in funcs):
                    raise DError("D_PROC_FUNC",
                                 f"failed to lookup '{function}' in module '{module}'")  # fmt: skip
            primary = elf.primary
            for sym in funcs:
                # aliases share one probe, named as dtrace names it (ElfFile.primary):
                # pid$1:a.out:_go:entry is the probe go:entry when _go is a weak go
                if sym.addr in done or not gmatch(function or "*", sym.name):
                    continue
                done.add(sym.addr)
                sym = sym._replace(name=primary[sym.addr])
                try:
                    off = elf.addr_to_offset(sym.addr)
                except ElfError:
                    continue
                # a uretprobe swaps the return address at the stack top, but an entry
                # point is jumped to with argc there: never give one a return probe
                called = sym.addr != elf.entry
                # entry and return probes both sit on the first instruction
                at_entry = _first_probeable(elf, sym)
                if not name or is_glob(name):
                    for n in (("entry", "return") if called else ("entry",)) if at_entry else ():
                        if gmatch(name or "*", n):
                            spec = UprobeSpec(
                                self.pid, obj.path, off, ret=n == "return", held=self.held
                            )
                            out.append((obj.name, sym.name, n, None, spec))
                    # every instruction whose hex offset the glob matches, as dtrace
                    for delta in _instructions(elf, sym):
                        if gmatch(name or "*", f"{delta:x}"):
                            spec = UprobeSpec(self.pid, obj.path, off + delta, held=self.held)
                            out.append((obj.name, sym.name, f"{delta:x}", None, spec))
                elif name == "return" and not called:
                    if strict and one_function:
                        raise DError(
                            "D_PROC_CREATEFAIL",
                            f"{obj.name}`{sym.name} is the entry point, never called: "
                            "it has no return probe",
                        )
                elif name in ("entry", "return") and not at_entry:
                    if strict and one_function:
                        raise DError("D_PROC_INSN", f"{obj.name}`{sym.name}: uprobes cannot "
                                     f"trace its first instruction, where {name} probes sit")  # fmt: skip
                elif name in ("entry", "return"):
                    spec = UprobeSpec(self.pid, obj.path, off, ret=name == "return", held=self.held)
                    out.append((obj.name, sym.name, name, None, spec))
                else:
                    delta = int(name, 16)
                    why = _offset_refused(elf, sym, delta)
                    if why:
                        if not (strict and one_function):
                            continue
                        raise DError(why[0], f"{obj.name}`{sym.name}: {why[1]}")
                    spec = UprobeSpec(self.pid, obj.path, off + delta, held=self.held)
                    out.append((obj.name, sym.name, f"{delta:x}", None, spec))
        return out

    def _address(self, module: str, name: str, strict: bool) -> list[tuple]:
        """`pid$target:a.out:-:4011d6`: the name is an address in the executable
        (its link-time virtual address), as dtrace's '-' function."""
        exe = next((o for o in self.objs if o.is_exe), None)
        if exe is None or (module and (is_glob(module) or not module_matches(module, exe))):
            if not strict:
                return []
            raise DError("D_PROC_LIB", "only the a.out module is valid with the '-' function")
        if not name or is_glob(name) or name in ("entry", "return"):
            if not strict:
                return []
            raise DError("D_PROC_NAME",
                         "only individual addresses may be specified with the '-' function")  # fmt: skip
        addr = int(name, 16)
        try:
            elf = open_elf(exe.path)
            off = elf.addr_to_offset(addr) if elf.in_code(addr) else -1
        except ElfError:
            off = -1
        if off < 0:
            if not strict:
                return []
            raise DError("D_PROC_OFF", f"address 0x{addr:x} is not in {exe.name}'s code")
        spec = UprobeSpec(self.pid, exe.path, off, held=self.held)
        return [(exe.name, "-", f"{addr:x}", None, spec)]


def _instructions(elf: Any, sym: Any) -> list[int]:
    """Offsets of sym's instructions that can carry a uprobe (x86.probeable)."""
    if not sym.size:
        return []
    try:
        code = elf.code(sym.addr, sym.size)
    except ElfError:
        return []
    return [i for i in x86.boundaries(code) if x86.probeable(code, i)]


def _first_probeable(elf: Any, sym: Any) -> bool:
    """Can sym's first instruction carry a uprobe (its entry and return probes)?"""
    if not sym.size:
        return True  # no extent to decode: taken on trust, as an explicit offset is
    try:
        code = elf.code(sym.addr, min(sym.size, 16))
        return x86.probeable(code, 0)
    except (ElfError, ValueError, IndexError):
        return True  # cut off or not code: the kernel has the last word


def _offset_refused(elf: Any, sym: Any, delta: int) -> tuple[str, str] | None:
    """Why sym+delta cannot be probed: outside the function, inside an instruction
    (a breakpoint there would change the instruction), or on one the kernel's
    uprobes refuse. None when it can."""
    if sym.size and delta >= sym.size:
        return "D_PROC_OFF", f"offset 0x{delta:x} outside of the function's {sym.size} bytes"
    if not sym.size:
        return None  # no extent to decode: taken on the user's word, as dtrace does
    try:
        code = elf.code(sym.addr, sym.size)
    except ElfError:
        return None
    starts = x86.boundaries(code)
    if delta not in starts:
        if starts and delta < starts[-1] + x86.length(code, starts[-1]):
            return "D_PROC_ALIGN", f"offset 0x{delta:x} is not aligned on an instruction"
        return None  # past what decodes (data or padding): the user's word
    if not x86.probeable(code, delta):
        return "D_PROC_INSN", f"uprobes cannot trace the instruction at offset 0x{delta:x}"
    return None
