"""The syscall provider's catalogue: `syscall:vmlinux:NAME:entry` and `:return`.

Probes come from the owned syscall table of the running architecture (no
tracefs needed), in system call number order, entry before return.  Entry
probes are typed with the call's C argument types as tracefs spells them;
a return probe has one argument, the return value as a `long`, as
dtrace-utils types it (its arg1 repeats arg0 at run time).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from pydtrace.lang import types as T
from pydtrace.lang.dataclass import replace
from pydtrace.probes.catalogue import ProbeTuple, Provider
from pydtrace.probes.glob import gmatch
from pydtrace.probes.syscalls import Syscall, SyscallTable, UnknownArch, size, table

MODULE = "vmlinux"

# Kernel typedefs found in syscall prototypes that D does not predefine,
# by what they are on LP64 Linux.  Pointer typedefs name opaque structs.
_KERNEL_TYPEDEFS: dict[str, T.CType] = {
    "umode_t": T.USHORT,
    "aio_context_t": T.ULONG,
    "clockid_t": T.INT,
    "timer_t": T.INT,
    "mqd_t": T.INT,
    "key_t": T.INT,
    "key_serial_t": T.INT,
    "qid_t": T.UINT,
    "rwf_t": T.INT,
    "__kernel_old_time_t": T.LONG,
    "cap_user_header_t": T.pointer(T.CType("struct", "struct __user_cap_header_struct")),
    "cap_user_data_t": T.pointer(T.CType("struct", "struct __user_cap_data_struct")),
    "sigset_t": T.CType("struct", "sigset_t", 8),
    "siginfo_t": T.CType("struct", "siginfo_t", 128),
    "stack_t": T.CType("struct", "stack_t", 24),
    "fd_set": T.CType("struct", "fd_set", 128),
}


@cache
def ctype(text: str) -> T.CType:
    """A D type for a C type as a syscall prototype writes it.

    The shape (integer width and sign, pointer, opaque struct) follows the
    C meaning; the name stays the prototype's text, qualifiers included, so
    `-lv` shows what the kernel declares.
    """
    base, stars = _split(text)
    t = _base_type(base)
    for _ in range(stars):
        t = T.pointer(t)
    if t.name == text:
        return t
    if t.kind == "ptr":  # only the spelling differs (qualifiers): same shape
        return replace(t, name=text)
    return T.typedef(text, t)  # 'unsigned', 'const int': resolves to the builtin


def _split(text: str) -> tuple[str, int]:
    """('const char', 2) for 'const char *const *': base words and pointer depth."""
    stars = text.count("*")
    words = [w for w in text.replace("*", " ").split() if w not in ("const", "volatile")]
    return " ".join(words), stars


def _base_type(base: str) -> T.CType:
    words = base.split()
    if words and words[0] in ("struct", "union", "enum"):
        kind, tag = words[0], " ".join(words[1:])
        if kind == "enum":
            return T.typedef(base, T.INT)
        return T.CType(kind, base, 0, tag=tag)  # incomplete: members unknown
    builtin = T.from_specifiers(words)
    if builtin is not None:
        return builtin
    known = T.BUILTIN_TYPEDEFS.get(base)
    if known is not None:
        return known
    kernel = _KERNEL_TYPEDEFS.get(base)
    if kernel is not None:
        return T.typedef(base, kernel)
    return T.typedef(base, T.LONG)  # unknown scalar: a register-wide value


def entry_argtypes(sc: Syscall) -> tuple[T.CType, ...]:
    return tuple(ctype(t) for t, _ in sc.args)


RETURN_ARGTYPES = (T.LONG,)


class SyscallProvider(Provider):
    """syscall:vmlinux:NAME:{entry,return} for every call of one architecture."""

    name = "syscall"

    def __init__(self, arch: str | None = None) -> None:
        self.arch = arch

    def table(self) -> SyscallTable | None:
        try:
            return table(self.arch)
        except UnknownArch:
            return None  # an unknown machine simply has no syscall probes

    def probes(self) -> Iterable[ProbeTuple]:
        tab = self.table()
        if tab is None:
            return
        for sc in tab.calls:
            yield (MODULE, sc.name, "entry", entry_argtypes(sc), sc)
            yield (MODULE, sc.name, "return", RETURN_ARGTYPES, sc)

    # the catalogue lists these only for a description that may name them
    def count(self) -> int:
        try:
            return 2 * size(self.arch)  # table(): one call per row
        except UnknownArch:
            return 0

    def may_list(self, module: str, function: str, name: str) -> bool:
        return gmatch(module, MODULE) and (gmatch(name, "entry") or gmatch(name, "return"))

    def listed_for(self, function: str) -> Iterable[tuple[int, ProbeTuple]]:
        tab = self.table()
        if tab is None:
            return
        for i, sc in enumerate(tab.calls):  # names are unique: at most one
            if sc.name == function:
                yield 2 * i, (MODULE, sc.name, "entry", entry_argtypes(sc), sc)
                yield 2 * i + 1, (MODULE, sc.name, "return", RETURN_ARGTYPES, sc)
