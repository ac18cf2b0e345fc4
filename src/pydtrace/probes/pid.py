"""The pid provider (`pid<N>:module:function:entry|return|<hex offset>`) and the
process model it shares with usdt (probes/usdt.py): a process's ELF objects.

Probes are made on demand for one process: Catalogue.match() calls
add_process_providers() for a description whose provider ends in digits
(`pid$target` is `pid1234` by then; `p*d1234` works too). Every probe carries a
UprobeSpec: what engines/ebpf/cg_uprobe.py needs to attach and decode it.
"""

from __future__ import annotations

import glob as _glob
import os
import re
import shutil
from dataclasses import dataclass
from typing import Any

from pydtrace.lang.errors import DError
from pydtrace.probes.catalogue import Provider
from pydtrace.probes.glob import gmatch, is_glob
from pydtrace.symbols import x86
from pydtrace.symbols.elf import ElfError, open_elf

# -c targets held before exec: pid -> argv (filled by the session)
HELD: dict[int, list[str]] = {}
ENTRY_ARGS = 10  # arg0..arg9, as every probe


@dataclass(frozen=True)
class UprobeSpec:
    """Where a probe is (path, file offset) and what it reads."""

    pid: int
    path: str
    offset: int  # file offset (what the uprobe PMU takes)
    ret: bool = False
    refctr: int = 0  # file offset of a USDT semaphore (0: none)
    usdt_args: tuple[str, ...] | None = None  # None: a function's registers (pid)
    # a -c child still held before exec: the probe must not fire in the forked
    # pydtrace's code that runs until execve (cg_uprobe's exec gate)
    held: bool = False
    is_uprobe: bool = True  # the code generator's marker


@dataclass(frozen=True)
class Obj:
    name: str  # basename, dtrace's module name
    path: str
    is_exe: bool


def hold(pid: int, argv: list[str]) -> None:
    """Record a -c child held before exec: its objects come from argv[0]'s ELF."""
    HELD[pid] = list(argv)


def _which(cmd: str) -> str | None:
    if "/" in cmd:
        return os.path.abspath(cmd)
    return shutil.which(cmd)


def _ld_dirs() -> list[str]:
    """The dynamic loader's default search path: ld.so.conf (with includes), then
    the built-in directories."""
    dirs: list[str] = []

    def conf(path: str) -> None:
        try:
            lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
        except OSError:
            return
        for ln in lines:
            ln = ln.split("#", 1)[0].strip()
            if ln.startswith("include "):
                for p in sorted(_glob.glob(ln.split(None, 1)[1])):
                    conf(p)
            elif ln:
                dirs.append(ln)

    conf("/etc/ld.so.conf")
    machine = os.uname().machine
    dirs += [f"/lib/{machine}-linux-gnu", f"/usr/lib/{machine}-linux-gnu", "/lib64", "/usr/lib64"]
    return dirs + ["/lib", "/usr/lib"]


def _needed(exe: str) -> list[str]:
    """Libraries an executable loads at start, found as ld.so would (DT_RUNPATH of the
    object needing it, LD_LIBRARY_PATH, ld.so.conf, built-in dirs), breadth first."""
    env = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    system = _ld_dirs()
    out: list[str] = []
    seen: set[str] = set()
    queue = [exe]
    while queue:
        try:
            elf = open_elf(queue.pop(0))
        except ElfError:
            continue
        for lib in elf.needed:
            if lib in seen:
                continue
            seen.add(lib)
            for d in (elf.runpath if "/" not in lib else [""]) + env + system:
                path = os.path.join(d, lib)
                if os.path.isfile(path):
                    real = os.path.realpath(path)
                    out.append(real)
                    queue.append(real)
                    break
    try:
        interp = open_elf(exe).interp
    except ElfError:
        interp = None
    if interp and os.path.exists(interp):
        out.append(os.path.realpath(interp))
    return out


def _script_interpreter(path: str) -> str:
    """The program exec runs for path: a `#!` script's interpreter (followed
    as the kernel does, at most 4 deep), else path itself."""
    for _ in range(4):
        try:
            with open(path, "rb") as f:
                head = f.read(256)
        except OSError:
            return path
        if not head.startswith(b"#!"):
            return path
        words = head[2:].split(b"\n", 1)[0].split()
        if not words:
            return path
        path = os.path.realpath(os.fsdecode(words[0]))
    return path


def process_objects(pid: int) -> list[Obj]:
    """The ELF objects of a process: its executable first, then its libraries.

    A -c target is still held before exec (its maps are the forked pydtrace's):
    its objects are argv[0] and the DT_NEEDED closure resolved like the loader.
    Resolving from the files rather than letting the target run to its entry
    point keeps the target untouched until tracing starts; uprobes are set on
    the files (inode + offset) and the kernel arms them when exec maps them.
    Libraries loaded later with dlopen() need the process running (-p).
    """
    if pid in HELD:
        exe = _which(HELD[pid][0])
        if exe is None:
            return []
        exe = _script_interpreter(os.path.realpath(exe))
        objs = [Obj(os.path.basename(exe), exe, True)]
        return objs + [Obj(os.path.basename(p), p, False) for p in _needed(exe)]
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
        with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as f:
            maps = f.read().splitlines()
    except OSError as e:
        raise DError("D_PROC_GRAB", f"failed to grab process {pid}: {e.strerror}") from None
    objs = [Obj(os.path.basename(exe), exe, True)]
    seen = {exe}
    for ln in maps:
        parts = ln.split(None, 5)
        if len(parts) < 6 or "x" not in parts[1] or not parts[5].startswith("/"):
            continue
        path = parts[5]
        if path in seen or path.endswith(" (deleted)"):
            continue
        seen.add(path)
        root = f"/proc/{pid}/root{path}"  # the file as the process sees it (containers)
        objs.append(Obj(os.path.basename(path), root if os.path.exists(root) else path, False))
    return objs


def module_matches(pattern: str, obj: Obj) -> bool:
    """dtrace's module names: `a.out` is the executable; `libc`, `libc.so` name
    libc.so.6 (a prefix ending at a dot); globs match the basename."""
    if not pattern:
        return True
    if is_glob(pattern):
        return gmatch(pattern, obj.name) or (obj.is_exe and gmatch(pattern, "a.out"))
    if pattern == obj.name or (obj.is_exe and pattern == "a.out"):
        return True
    return obj.name.startswith(pattern + ".") or pattern == obj.path


def _pid_of(provider: str) -> int | None:
    m = re.search(r"(\d+)$", provider)
    return int(m.group(1)) if m else None


class PidProvider(Provider):
    """pid<N>: entry, return and function+offset probes on uprobes."""

    def __init__(self, pid: int, objs: list[Obj]) -> None:
        self.name = f"pid{pid}"
        self.pid = pid
        self.objs = objs

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
            held = self.pid in HELD
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
                            spec = UprobeSpec(self.pid, obj.path, off, ret=n == "return", held=held)
                            out.append((obj.name, sym.name, n, None, spec))
                    # every instruction whose hex offset the glob matches, as dtrace
                    for delta in _instructions(elf, sym):
                        if gmatch(name or "*", f"{delta:x}"):
                            spec = UprobeSpec(self.pid, obj.path, off + delta, held=held)
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
                    spec = UprobeSpec(self.pid, obj.path, off, ret=name == "return", held=held)
                    out.append((obj.name, sym.name, name, None, spec))
                else:
                    delta = int(name, 16)
                    why = _offset_refused(elf, sym, delta)
                    if why:
                        if not (strict and one_function):
                            continue
                        raise DError(why[0], f"{obj.name}`{sym.name}: {why[1]}")
                    spec = UprobeSpec(self.pid, obj.path, off + delta, held=held)
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
        spec = UprobeSpec(self.pid, exe.path, off, held=self.pid in HELD)
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


def match_process(cat: Any, desc: Any) -> list[Any]:
    """Catalogue.match() for a description naming a process (`pid123`, `p*d123`,
    `myprov123`): the probes the process's providers make for it. Their module
    is the object's basename even when the description said `a.out` or `libc`."""
    add_process_providers(cat, desc.provider)
    found: dict[int, Any] = {}
    for prov in list(cat.providers.values()):
        if isinstance(prov, PidProvider | _usdt_class()) and gmatch(desc.provider, prov.name):
            strict = isinstance(prov, PidProvider) and not is_glob(desc.provider)
            for t in prov.expand(desc.module, desc.function, desc.name, strict=strict):
                p = cat._insert(prov.name, t)
                found[p.id] = p
    return [found[k] for k in sorted(found)]


def _usdt_class() -> type:
    from pydtrace.probes.usdt import UsdtProvider

    return UsdtProvider


def add_process_providers(cat: object, provider: str) -> None:
    """Add pid<N> and the usdt providers of process N to the catalogue, once."""
    pid = _pid_of(provider)
    if pid is None or f"pid{pid}" in getattr(cat, "providers", {}):
        return
    if provider == "pid0":
        raise DError("D_PROC_BADPID", "pid0 does not contain a valid pid")
    if pid <= 0 or (pid not in HELD and not os.path.exists(f"/proc/{pid}")):
        if not is_glob(provider) and provider.startswith("pid"):
            raise DError("D_PROC_GRAB", f"failed to grab process {pid}")
        return
    if pid == os.getpid():
        return  # ourselves: never set breakpoints in the tracer
    objs = process_objects(pid)
    cat.add_provider(PidProvider(pid, objs))  # type: ignore[attr-defined]
    from pydtrace.probes.usdt import usdt_providers

    for p in usdt_providers(pid, objs):
        cat.add_provider(p)  # type: ignore[attr-defined]
