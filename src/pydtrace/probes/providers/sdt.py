"""The sdt provider: every kernel tracepoint in tracefs as `sdt:<group>::<event>`.

Probes are made on demand (`Catalogue.match` asks `expand()`), so a program
that never names sdt reads nothing from tracefs; the list of events is one
read of `available_events`, a probe's `format` file is read only when its
argument types are needed (matching it in a clause, `-lv`).

Arguments, typed from the format file:
- `args->name`: `args` points at a struct holding the event's fields (those
  after the common_* header) at their record offsets; `char x[N]` is a
  string (read up to its NUL), other arrays are arrays, a pointer is a uintptr-shaped integer (named
  as the kernel declares it), and a `__data_loc char[]` string is a string
  member placed after the record (at most DATA_LOC_SIZE - 1 bytes).
- `args[N]` / argN: the N-th field: scalars by value, arrays and __data_loc
  strings as the address of their bytes (typed `char [N]` / `char *`).

The eBPF engine builds that struct in its per-CPU frame in the prologue
(engines/ebpf/providers/sdt.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from pydtrace.lang import types as T
from pydtrace.lang.dataclass import dataclass, field, replace
from pydtrace.probes import tracefs
from pydtrace.probes.catalogue import PROVIDER_ATTRIBUTES, ProbeTuple, Provider
from pydtrace.probes.glob import gmatch, is_glob

DATA_LOC_SIZE = 256  # bytes kept of a __data_loc string (with its NUL)
# groups of dynamic events (kprobes, uprobes and ours) are not static tracepoints
SKIP_GROUPS = frozenset(("kprobes", "uprobes", "dt_pid"))
_INTS = {(1, True): T.SCHAR, (1, False): T.UCHAR, (2, True): T.SHORT, (2, False): T.USHORT,
         (4, True): T.INT, (4, False): T.UINT, (8, True): T.LONG, (8, False): T.ULONG}  # fmt: skip


@dataclass
class ArgField:
    """How one field reaches D: record offset/size, the struct member's offset
    (differs from the record's for __data_loc strings), how args[N] sees it."""

    name: str
    ctype: T.CType  # the struct member's type
    argtype: T.CType  # args[N]'s type
    rec_off: int
    size: int
    mem_off: int
    kind: str  # "int" (by value), "array" (address), "string" (__data_loc), "none"
    signed: bool = False
    rel_loc: bool = False


@dataclass
class TracepointArgs:
    """A tracepoint's arguments: the args struct (`args_type` is a pointer to
    it), the fields in order, and the sizes the prologue copies."""

    group: str
    event: str
    fields: list[ArgField] = field(default_factory=list)
    record_size: int = 0  # bytes of the fixed record copied into the frame
    size: int = 0  # the whole struct: record copy + __data_loc strings
    args_type: T.CType | None = None

    @property
    def argtypes(self) -> tuple[T.CType, ...]:
        return tuple(f.argtype for f in self.fields)


def _int_type(name: str, size: int, signed: bool) -> T.CType:
    base = _INTS.get((size, signed))
    if base is None:
        return T.array(T.UCHAR, size)
    named = T.BUILTIN_TYPEDEFS.get(name) or T.from_specifiers(name.split())
    if named is not None and named.r.size == size and named.r.signed == signed:
        return named
    return base if base.name == name else T.typedef(name, base)


def _field(f: tracefs.Field, mem_off: int) -> ArgField:
    decl = " ".join(f.type.split())
    if f.data_loc:
        return ArgField(f.name, T.STRING, T.CHARP, f.offset, f.size, mem_off, "string",
                        rel_loc=f.rel_loc)  # fmt: skip
    if f.array_len:
        esize = max(f.size // f.array_len, 1)
        elem = T.CHAR if decl == "char" else _int_type(decl, esize, f.signed)
        t = replace(T.array(elem, f.array_len), name=f"{decl}[{f.array_len}]")
        # args->comm: a char array is a string (of its own size, read to its NUL)
        mt = T.CType("string", "string", f.size) if decl == "char" else t
        return ArgField(f.name, mt, t, f.offset, f.size, f.offset, "array")
    if f.array_len == 0:  # a flexible array: no bytes of its own in the record
        t = T.array(T.UCHAR, 0)
        return ArgField(f.name, t, t, f.offset, f.size, f.offset, "none")
    if "*" in decl:  # a kernel pointer: an address to pass to copyin/stringof
        t = T.typedef(decl, T.ULONG) if f.size == 8 else _int_type(decl, f.size, False)
        return ArgField(f.name, t, t, f.offset, f.size, f.offset, "int")
    t = _int_type(decl, f.size, f.signed)
    kind = "int" if t.kind == "int" else "array"
    return ArgField(f.name, t, t, f.offset, f.size, f.offset, kind, signed=f.signed)


def tracepoint_args(group: str, event: str) -> TracepointArgs:
    """The arguments of tracepoint group:event from its format file."""
    fmt = tracefs.event_format(group, event)
    info = TracepointArgs(group, event)
    fields = fmt.event_fields
    info.record_size = max((f.offset + f.size for f in fmt.fields), default=0)
    end = (info.record_size + 7) // 8 * 8
    members: list[T.Member] = []
    for f in fields:
        af = _field(f, end)
        if af.kind == "string":
            end += DATA_LOC_SIZE
        info.fields.append(af)
        members.append(T.Member(af.name, af.ctype, af.mem_off))
    info.size = end
    tag = f"{group}_{event}"
    st = T.CType("struct", f"struct {tag}", end, members=members, tag=tag)
    info.args_type = T.pointer(st)
    return info


class SdtData:
    """A probe's data: the tracepoint, its arguments read on first use."""

    def __init__(self, group: str, event: str) -> None:
        self.group, self.event = group, event
        self._args: TracepointArgs | None = None

    @property
    def args(self) -> TracepointArgs:
        if self._args is None:
            self._args = tracepoint_args(self.group, self.event)
        return self._args

    @property
    def argtypes(self) -> tuple[T.CType, ...]:
        return self.args.argtypes

    @property
    def args_type(self) -> T.CType | None:
        return self.args.args_type


class SdtProvider(Provider):
    name = "sdt"
    attributes = PROVIDER_ATTRIBUTES["sdt"]

    def __init__(self) -> None:
        self._events: list[tuple[str, str]] | None = None

    def events(self) -> list[tuple[str, str]]:
        """(group, event) of every tracepoint, in available_events order."""
        if self._events is None:
            try:
                groups = tracefs.available_events()
            except (tracefs.TracefsError, OSError):
                groups = {}
            self._events = [
                (g, e) for g, evs in groups.items() if g not in SKIP_GROUPS for e in evs
            ]
        return self._events

    def expand(
        self, module: str, function: str, name: str, types: bool = True
    ) -> Iterable[ProbeTuple]:
        """The probes a description names (module = group, function empty);
        with types, their argument types are read now (for the checker)."""
        if function and not gmatch(function, ""):
            return
        if module and not is_glob(module) and name and not is_glob(name):
            known = module not in SKIP_GROUPS and tracefs.has_event(module, name)
            found = [(module, name)] if known else []
        elif name and not is_glob(name) and self._events is None:
            # `BEGIN` (`:::BEGIN`) asks every provider: which groups have an
            # event of that name, without reading the list of them all
            try:
                groups = tracefs.groups_with_event(name)
            except (tracefs.TracefsError, OSError):
                groups = []
            found = [(g, name) for g in groups if g not in SKIP_GROUPS and gmatch(module, g)]
        else:
            found = self.events()
            if name and not is_glob(name):  # (BEGIN: no glob matching of every event)
                found = [(g, e) for g, e in found if e == name]
            found = [(g, e) for g, e in found if gmatch(module, g) and gmatch(name, e)]
        # args[] is typed only for a clause on a single tracepoint (two tracepoints
        # never share type objects), so a glob naming more reads no formats:
        # -lv reads them through SdtData.argtypes
        types = types and len(found) == 1
        for g, e in found:
            data = SdtData(g, e)
            argtypes = None
            if types:
                try:
                    argtypes = data.argtypes
                except (tracefs.TracefsError, ValueError):
                    continue
            yield (g, "", e, argtypes, data)
