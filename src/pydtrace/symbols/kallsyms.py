"""Kernel symbols from /proc/kallsyms: address -> (module, function, offset).

dtrace names a kernel frame `module`function+0xoff`, the module being
`vmlinux` for the kernel itself and the loadable module's name otherwise.
kallsyms gives every text symbol with its address (root only: others see
zeros) and, for a module's symbols, `[name]`; the sizes are not given, so a
symbol is taken to reach the next one.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from functools import cache

KALLSYMS = "/proc/kallsyms"
_TEXT = frozenset("tTwW")
# the probe machinery itself: a kernel stack taken in a BPF program starts in
# the program (module `bpf`), then in these, before the probe's own site
# (__traceiter_<event> runs when more than one program, ours or another
# tracer's, is attached to the tracepoint)
MACHINERY = re.compile(
    r"bpf_trace_run\d+|__bpf_trace_\w+|__traceiter_\w+|perf_syscall_(enter|exit)"
    r"|syscall_trace_enter|syscall_exit_work"
)


def is_machinery(mod: str, name: str) -> bool:
    return mod == "bpf" or (mod == "vmlinux" and MACHINERY.fullmatch(name) is not None)


class KernelSymbols:
    def __init__(self, path: str = KALLSYMS) -> None:
        addrs: list[int] = []
        names: list[tuple[str, str]] = []
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    parts = line.split()
                    if len(parts) < 3 or parts[1] not in _TEXT:
                        continue
                    addr = int(parts[0], 16)
                    if not addr:
                        continue  # addresses hidden from this user
                    mod = parts[3][1:-1] if len(parts) > 3 else "vmlinux"
                    addrs.append(addr)
                    names.append((mod, parts[2]))
        except OSError:
            pass
        order = sorted(range(len(addrs)), key=addrs.__getitem__)
        self._addrs = [addrs[i] for i in order]
        self._names = [names[i] for i in order]
        self._starts: dict[str, int] | None = None

    def module_start(self, module: str) -> int:
        """The lowest text address of a module (or of vmlinux)."""
        starts = self._starts
        if starts is None:
            starts = self._starts = {}
            for addr, (mod, _) in zip(self._addrs, self._names):
                starts.setdefault(mod, addr)
        return starts.get(module, 0)

    def ranges(self, want: Callable[[str, str], bool]) -> list[tuple[int, int]]:
        """[start, end) of the functions want(module, name) selects, each
        reaching the next symbol; neighbours merged (across the __pfx_
        padding before each function, which holds no code)."""
        out: list[tuple[int, int]] = []
        addrs = self._addrs
        for i, (mod, name) in enumerate(self._names):
            if i + 1 == len(addrs):
                break
            if not want(mod, name):
                if name.startswith("__pfx_") and out and out[-1][1] == addrs[i]:
                    out[-1] = (out[-1][0], addrs[i + 1])
                continue
            if out and out[-1][1] == addrs[i]:
                out[-1] = (out[-1][0], addrs[i + 1])
            else:
                out.append((addrs[i], addrs[i + 1]))
        return out

    def lookup(self, addr: int) -> tuple[str, str, int] | None:
        """(module, function, offset) of the text symbol holding addr."""
        i = bisect.bisect_right(self._addrs, addr) - 1
        if i < 0:
            return None
        mod, name = self._names[i]
        return mod, name, addr - self._addrs[i]


@cache
def kernel_symbols() -> KernelSymbols:
    return KernelSymbols()
