"""The running kernel's types and variables as D sees them: struct, union,
enum and typedef names a program uses that it does not declare itself, and
`symbol names, from the kernel's BTF (symbols/btf.py) and kallsyms.

Nothing is converted up front. A name is looked up when a program names it;
a struct or union becomes a CType whose members are converted when first
asked for (a member's own struct type is again such a shell), so naming
`struct task_struct` converts task_struct's members and nothing they point
to. The BTF blob itself is read on first need: `dtrace -n 'BEGIN{exit(0)}'`
never opens it.

Kernel objects live in kernel memory: every CType made here has kernel=True,
which is how the checker tells a read of kernel memory (curthread->comm)
from one of D's own (a D struct in scratch space).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from pydtrace.lang import types as T
from pydtrace.lang.errors import DError
from pydtrace.lang.program import KernelSymbol
from pydtrace.lang.types import CType
from pydtrace.symbols import btf as B

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

KALLSYMS = "/proc/kallsyms"
_DATA_KINDS = frozenset("dDbB")  # kallsyms' letters for data and bss symbols
_TEXT_KINDS = frozenset("tTwW")
# fewer data symbols than this in kallsyms: built without CONFIG_KALLSYMS_ALL
# (which lists tens of thousands; without it, only section markers remain)
_FEW_DATA = 1000


class KernelType(CType):
    """A type converted from BTF whose members are converted on first use (a
    struct or union), or taken from the type it names (a typedef of one)."""

    def __init__(self, *args: Any, load: Callable[[], list[T.Member]] | None = None, **kw: Any):
        self._load = load
        self._members: list[T.Member] | None = None
        super().__init__(*args, **kw)

    @property  # type: ignore[override]
    def members(self) -> list[T.Member] | None:
        if self.base is not None:
            return self.base.members
        if self._load is not None:
            load, self._load = self._load, None
            self._members = load()
        return self._members

    @members.setter
    def members(self, value: list[T.Member] | None) -> None:
        self._members = value


class KernelTypes:
    """The kernel's names for one session's checker (lang.program.KernelNames).

    btf_path and kallsyms_path are for tests; a missing BTF file means no
    kernel types (every lookup answers None), as on a kernel without
    CONFIG_DEBUG_INFO_BTF."""

    def __init__(self, btf_path: str = B.VMLINUX, kallsyms_path: str = KALLSYMS) -> None:
        self.btf_path = btf_path
        self.kallsyms_path = kallsyms_path
        self._blob: bytes | None = None
        self._btf: B.BTF | None = None
        self._missing = False
        self._types: dict[int, CType] = {}
        self._typedef_names: dict[str, bool] = {}
        self._kallsyms: str | None = None

    # --- the BTF blob, read once -------------------------------------------------
    def _data(self) -> bytes | None:
        if self._blob is None and not self._missing:
            try:
                loaded = B.loaded() if self.btf_path == B.VMLINUX else None
                if loaded is not None:
                    self._blob = loaded.data
                else:
                    self._blob = B.read_blob(self.btf_path)
            except (OSError, B.BTFError):
                self._missing = True
        return self._blob

    @property
    def btf(self) -> B.BTF | None:
        if self._btf is None:
            data = self._data()
            if data is None:
                return None
            if self.btf_path == B.VMLINUX:
                self._btf = B.vmlinux_from(data)
            else:
                self._btf = B.BTF(data)
        return self._btf

    # --- names -------------------------------------------------------------------
    def is_typedef(self, name: str) -> bool:
        known = self._typedef_names.get(name)
        if known is None:
            data = self._data()
            if self._btf is not None:
                known = self._find(name, B.TYPEDEF) is not None
            else:
                known = data is not None and B.has_typedef(data, name)
            self._typedef_names[name] = known
        return known

    def type_named(self, name: str) -> CType | None:
        """ "struct x", "union x", "enum x" or a typedef name -> its CType."""
        kind = B.TYPEDEF
        for prefix, k in (("struct ", B.STRUCT), ("union ", B.UNION), ("enum ", B.ENUM)):
            if name.startswith(prefix):
                name, kind = name[len(prefix) :].strip(), k
        if kind == B.TYPEDEF and not self.is_typedef(name):
            return None  # (without reading every type when the answer is no)
        if self.btf is None:
            return None
        tid = self._find(name, kind)
        return None if tid is None else self.convert(tid)

    def _find(self, name: str, kind: int) -> int | None:
        btf = self.btf
        if btf is None:
            return None
        try:
            tid = btf.find(name, kind)
        except B.BTFError:
            if kind not in (B.STRUCT, B.UNION):
                return None
            try:  # only declared (struct x;): an incomplete type
                tid = btf.find(name, B.FWD)
            except B.BTFError:
                return None
        found = btf.kind(tid)
        if kind == B.TYPEDEF and found != B.TYPEDEF:
            return None
        if found == B.FWD and kind in (B.STRUCT, B.UNION):
            # a forward declaration of the other kind is no answer
            if btf.kind_flag(tid) != (kind == B.UNION):
                return None
        return tid

    # --- conversion ----------------------------------------------------------------
    def convert(self, tid: int) -> CType:
        """The CType of BTF type tid (qualifiers dropped, as D drops them)."""
        if tid == 0:
            return T.VOID
        t = self._types.get(tid)
        if t is None:
            t = self._types[tid] = self._make(tid)
        return t

    def _make(self, tid: int) -> CType:
        btf = self.btf
        assert btf is not None
        kind = btf.kind(tid)
        name = btf.name(tid)
        if kind in (B.CONST, B.VOLATILE, B.RESTRICT, B.TYPE_TAG):
            return self.convert(btf.ref(tid))
        if kind == B.INT:
            return _integer(name, btf.size_of(tid), btf.int_info(tid)[0])
        if kind == B.FLOAT:
            return {4: T.FLOAT, 8: T.DOUBLE}.get(btf.size_of(tid), T.LDOUBLE)
        if kind == B.PTR:
            target = self.convert(btf.pointee(tid))
            if target.r.kind == "func":
                return CType("ptr", f"{target.r.target} (*)()", T.POINTER_SIZE, target=target)
            return T.pointer(target)
        if kind == B.ARRAY:
            elem, count = btf.array_info(tid)
            return T.array(self.convert(elem), count)
        if kind in (B.STRUCT, B.UNION, B.FWD):
            what = (
                "union" if (kind == B.UNION or (kind == B.FWD and btf.kind_flag(tid))) else "struct"
            )
            if kind == B.FWD and name:
                whole = self._find(name, B.UNION if what == "union" else B.STRUCT)
                if whole is not None and whole != tid and btf.kind(whole) != B.FWD:
                    return self.convert(whole)
            size = btf.size_of(tid) if kind != B.FWD else 0
            load = (lambda: self._members(tid)) if kind != B.FWD else None
            return KernelType(what, f"{what} {name or '(anon)'}", size, tag=name, kernel=True,
                              load=load)  # fmt: skip
        if kind in (B.ENUM, B.ENUM64):
            size = btf.size_of(tid)
            values = btf.enum_values(tid)
            spelled = f"enum {name or '(anon)'}"
            if size != 4:  # D's enums are ints: an enum of another width is its integer
                return CType("int", spelled, size, btf.is_signed(tid), kernel=True)
            return CType("enum", spelled, 4, True, enumerators=values, tag=name, kernel=True)
        if kind == B.TYPEDEF:
            base = self.convert(btf.ref(tid))
            return KernelType(base.kind, name, base.size, base.signed, base.target, base.count,
                              None, base.enumerators, base.tag, base=base, kernel=True)  # fmt: skip
        if kind in (B.FUNC, B.FUNC_PROTO):
            ret = self.convert(btf.ref(btf.ref(tid) if kind == B.FUNC else tid))
            return CType("func", f"{ret} ()", 0, target=ret, kernel=True)
        if kind == B.VAR:
            return self.convert(btf.ref(tid))
        raise DError("D_UNKNOWN", f"unsupported BTF type {btf.type_name(tid)}")

    def _members(self, tid: int) -> list[T.Member]:
        btf = self.btf
        assert btf is not None
        out: list[T.Member] = []
        for m in btf.members(tid):
            mt = self.convert(m.type)
            if not m.bitfield_size:
                out.append(T.Member(m.name, mt, m.bit_offset // 8))
                continue
            # a bit-field: D reads its container, an integer of the member's
            # type's width at an offset aligned to that width, and shifts
            unit = max(1, mt.int_size() if mt.is_int() else 8) * 8
            start, shift = divmod(m.bit_offset, unit)
            if shift + m.bitfield_size > unit:  # it straddles two: read eight bytes
                unit, mt = 64, T.LONG if mt.is_signed() else T.ULONG
                start, shift = divmod(m.bit_offset, unit)
            out.append(T.Member(m.name, mt, start * unit // 8, shift, m.bitfield_size))
        return out

    # --- `symbols ------------------------------------------------------------------
    def symbol(self, module: str, name: str) -> KernelSymbol:
        found = self._kallsyms_entry(module, name)
        btf = self.btf
        if found is not None:
            addr, letter, mod = found
            tid = None
            if btf is not None and mod == "vmlinux":
                tid = btf.find_symbol(name, B.FUNC if letter in _TEXT_KINDS else B.VAR)
            if tid is None:
                raise DError(
                    "D_SYM_NOTYPES",
                    f"no symbolic type information is available for {mod}`{name}: "
                    "No type information available for symbol",
                )
            return KernelSymbol(mod, name, addr, self.convert(tid))
        if btf is not None and module in ("", "vmlinux"):
            var = btf.find_symbol(name, B.VAR) if name else None
            where = btf.datasec_offset(var) if var is not None else None
            if var is not None and where is not None and where[0] == ".data..percpu":
                return KernelSymbol("vmlinux", name, where[1], self.convert(var), percpu=True)
        if module not in ("", "vmlinux") and not self._module_known(module):
            raise DError("D_IDENT_UNDEF", f"failed to resolve {module}`{name}: Unknown module name")
        raise DError(
            "D_IDENT_UNDEF",
            f"failed to resolve {module}`{name}: Unknown symbol name",
            hint=self._why_missing(name) if name else None,
        )

    def _kallsyms_text(self) -> str:
        if self._kallsyms is None:
            try:
                with open(self.kallsyms_path, encoding="utf-8", errors="replace") as f:
                    self._kallsyms = f.read()
            except OSError:
                self._kallsyms = ""
        return self._kallsyms

    def _kallsyms_entry(self, module: str, name: str) -> tuple[int, str, str] | None:
        """(address, kallsyms' letter, module) of the symbol, or None."""
        if not name:
            return None
        text = self._kallsyms_text()
        want = "" if module in ("", "vmlinux") else module
        pattern = rf"^([0-9a-f]+) (\w) {re.escape(name)}(?:\t\[(\S+)\])?$"
        for m in re.finditer(pattern, text, re.M):
            mod = m.group(3) or ""
            if module and mod != want:
                continue
            addr = int(m.group(1), 16)
            if addr:
                return addr, m.group(2), mod or "vmlinux"
        return None

    def _module_known(self, module: str) -> bool:
        return f"\t[{module}]" in self._kallsyms_text()

    def _why_missing(self, name: str) -> str | None:
        """Why kallsyms and BTF do not name a symbol: said once, plainly."""
        text = self._kallsyms_text()
        if not text:
            return f"{self.kallsyms_path} cannot be read, so no kernel symbol has an address"
        if re.search(r"^0+ ", text, re.M) and not re.search(r"^0*[1-9a-f][0-9a-f]* ", text, re.M):
            return "kallsyms shows this user no addresses (kernel.kptr_restrict): run as root"
        ndata = sum(1 for m in re.finditer(r"^\S+ ([dDbB]) ", text, re.M))
        if ndata >= _FEW_DATA:
            return None  # every variable is listed: the name is simply not there
        btf = "" if self.btf is None else ", and its BTF describes per-CPU variables only"
        return (
            f"`{name}: this kernel's kallsyms lists functions and {ndata} data symbols only"
            f" (no CONFIG_KALLSYMS_ALL){btf}"
        )


def _integer(name: str, size: int, signed: bool) -> CType:
    """D's integer type for a BTF INT (char stays char; __int128 keeps its width)."""
    if name == "char":
        return T.CHAR
    if name == "_Bool":
        return T.BOOL
    if "long long" in name:
        return T.LLONG if signed else T.ULLONG
    found = {
        (1, True): T.SCHAR,
        (1, False): T.UCHAR,
        (2, True): T.SHORT,
        (2, False): T.USHORT,
        (4, True): T.INT,
        (4, False): T.UINT,
        (8, True): T.LONG,
        (8, False): T.ULONG,
    }.get((size, signed))
    return found if found is not None else CType("int", name, size, signed)


def available(path: str = B.VMLINUX) -> bool:
    return os.path.exists(path)
