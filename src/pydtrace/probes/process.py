"""A traced process as the pid and usdt providers see it: its ELF objects
(the executable first, then its libraries, read from argv[0] for a -c child
still held before exec), dtrace's module names for them, and UprobeSpec, where a probe of
either provider is and what it reads (engines/ebpf/providers/uprobe.py
attaches and decodes it)."""

from __future__ import annotations

import glob as _glob
import os
import re
import shutil

from pydtrace.lang.dataclass import dataclass
from pydtrace.lang.errors import DError
from pydtrace.probes.glob import gmatch, is_glob
from pydtrace.symbols.elf import ElfError, open_elf


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
    # pydtrace's code that runs until execve (the eBPF engine's exec gate)
    held: bool = False


@dataclass(frozen=True)
class Obj:
    name: str  # basename, dtrace's module name
    path: str
    is_exe: bool


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


def process_objects(pid: int, held_argv: list[str] | None = None) -> list[Obj]:
    """The ELF objects of a process: its executable first, then its libraries.

    A -c target is still held before exec (its maps are the forked pydtrace's):
    its objects are argv[0] and the DT_NEEDED closure resolved like the loader.
    Resolving from the files rather than letting the target run to its entry
    point keeps the target untouched until tracing starts; uprobes are set on
    the files (inode + offset) and the kernel arms them when exec maps them.
    Libraries loaded later with dlopen() need the process running (-p).
    """
    if held_argv is not None:
        exe = _which(held_argv[0])
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


def process_id(provider: str) -> int | None:
    """The process a per-process provider name ends in (`pid123`, `myprov123`)."""
    m = re.search(r"(\d+)$", provider)
    return int(m.group(1)) if m else None


def traceable(pid: int, provider: str, held: bool = False) -> bool:
    """Whether process pid's providers can be made; a description naming it
    exactly (`pid123`) that cannot is an error (D_PROC_BADPID, D_PROC_GRAB)."""
    if provider == "pid0":
        raise DError("D_PROC_BADPID", "pid0 does not contain a valid pid")
    if pid <= 0 or (not held and not os.path.exists(f"/proc/{pid}")):
        if not is_glob(provider) and provider.startswith("pid"):
            raise DError("D_PROC_GRAB", f"failed to grab process {pid}")
        return False
    return pid != os.getpid()  # ourselves: never set breakpoints in the tracer
