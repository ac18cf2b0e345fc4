"""D's type system: C integer types with LP64 widths, strings, pointers, arrays,
structs, unions and enums, plus the C conversion rules (promotion, usual
arithmetic conversions) that D inherits.

A CType is immutable and compared by identity of its shape (dataclass eq), so
`INT == INT` holds and a typedef stays distinguishable only by its name.
"""

from __future__ import annotations

from collections.abc import Callable

from pydtrace.lang.dataclass import dataclass, field

POINTER_SIZE = 8


@dataclass(frozen=True, eq=False)
class Member:
    name: str
    type: CType
    offset: int  # bytes from the start of the struct
    bit_offset: int = 0  # for bit-fields: bits past `offset`
    bits: int = 0  # 0 = not a bit-field


@dataclass(eq=False)
class CType:
    """One D type.

    kind is one of: 'int', 'float', 'string', 'void', 'ptr', 'array', 'struct',
    'union', 'enum', 'func', 'agg' (the type of an aggregation reference), 'stack'.
    """

    kind: str
    name: str
    size: int = 0
    signed: bool = False
    target: CType | None = None  # pointee (ptr), element (array), base (typedef'd enum)
    count: int = 0  # array element count
    members: list[Member] | None = None  # struct/union; None = incomplete (forward decl)
    enumerators: dict[str, int] = field(default_factory=dict)
    tag: str = ""  # struct/union/enum tag
    base: CType | None = None  # typedef: the type it names (resolved is self.resolve())
    kernel: bool = False  # a type of the running kernel (BTF): its objects live in kernel memory

    # --- identity -----------------------------------------------------------
    def resolve(self) -> CType:
        """Strip typedefs."""
        t = self
        while t.base is not None:
            t = t.base
        return t

    def same(self, other: CType) -> bool:
        """Type compatibility in the sense of C's compatible types."""
        a, b = self.resolve(), other.resolve()
        if a is b:
            return True
        if a.kind != b.kind:
            return False
        if a.kind == "int":
            return a.size == b.size and a.signed == b.signed
        if a.kind in ("ptr", "array"):
            assert a.target is not None and b.target is not None
            return (a.kind == "ptr" or a.count == b.count) and a.target.same(b.target)
        if a.kind in ("struct", "union", "enum"):
            return a.tag == b.tag and a.tag != ""
        return a.kind in ("string", "void", "float") and a.size == b.size

    def __repr__(self) -> str:
        return f"CType({self.name!r})"

    def __str__(self) -> str:
        return self.name

    # --- classification -----------------------------------------------------
    @property
    def r(self) -> CType:
        return self.resolve()

    def is_int(self) -> bool:
        return self.r.kind in ("int", "enum")

    def is_string(self) -> bool:
        return self.r.kind == "string"

    def is_pointer(self) -> bool:
        return self.r.kind == "ptr"

    def is_array(self) -> bool:
        return self.r.kind == "array"

    def is_arith(self) -> bool:
        return self.r.kind in ("int", "enum", "float")

    def is_scalar(self) -> bool:
        """Usable as a condition: integers, enums and pointers (not strings, as in dtrace)."""
        return self.r.kind in ("int", "enum", "float", "ptr")

    def is_struct(self) -> bool:
        return self.r.kind in ("struct", "union")

    def is_void(self) -> bool:
        return self.r.kind == "void"

    def is_char_array(self) -> bool:
        r = self.r
        return (
            r.kind == "array"
            and r.target is not None
            and r.target.r.kind == "int"
            and r.target.r.size == 1
        )

    def is_signed(self) -> bool:
        r = self.r
        return r.kind == "enum" or (r.kind in ("int", "float") and r.signed)

    def int_size(self) -> int:
        r = self.r
        return 4 if r.kind == "enum" else r.size

    def member(self, name: str) -> Member | None:
        """The member called name, also one of an anonymous struct or union
        member's (C11's rule, which the kernel's types use throughout), with
        its offset from the start of this type."""
        members = self.r.members or ()
        for m in members:
            if m.name == name:
                return m
        for m in members:
            if not m.name and m.type.r.kind in ("struct", "union"):
                inner = m.type.member(name)
                if inner is not None:
                    return Member(
                        inner.name,
                        inner.type,
                        m.offset + inner.offset,
                        inner.bit_offset,
                        inner.bits,
                    )
        return None


def _int(name: str, size: int, signed: bool) -> CType:
    return CType("int", name, size, signed)


CHAR = _int("char", 1, True)
SCHAR = _int("signed char", 1, True)
UCHAR = _int("unsigned char", 1, False)
SHORT = _int("short", 2, True)
USHORT = _int("unsigned short", 2, False)
INT = _int("int", 4, True)
UINT = _int("unsigned int", 4, False)
LONG = _int("long", 8, True)
ULONG = _int("unsigned long", 8, False)
LLONG = _int("long long", 8, True)
ULLONG = _int("unsigned long long", 8, False)
BOOL = _int("_Bool", 1, False)
FLOAT = CType("float", "float", 4, True)
DOUBLE = CType("float", "double", 8, True)
LDOUBLE = CType("float", "long double", 16, True)
VOID = CType("void", "void", 0)
STRING = CType("string", "string", 256)  # size follows strsize at check time
AGG = CType("agg", "aggregation", 8)  # the value of `@a` used outside an aggregation statement
STACK = CType("stack", "stack", 8)  # stack() records
USTACK = CType("stack", "ustack", 8)  # ustack() records: the frames of one process
SYMBOL_FUNCS = ("sym", "func", "mod", "usym", "ufunc", "umod", "uaddr")
# sym(addr) and the rest as values: the address, typed so that an aggregation
# key prints it resolved (named _sym, _ufunc... ; an unsigned long otherwise)
SYMADDR = {f: CType("int", f"_{f}", 8, False, base=ULONG) for f in SYMBOL_FUNCS}


def pointer(t: CType) -> CType:
    name = t.name + ("*" if t.name.endswith("*") else " *")
    return CType("ptr", name, POINTER_SIZE, False, target=t)


def array(t: CType, n: int) -> CType:
    return CType("array", f"{t.name} [{n}]", t.size * n, False, target=t, count=n)


def typedef(name: str, t: CType) -> CType:
    return CType(
        t.kind,
        name,
        t.size,
        t.signed,
        t.target,
        t.count,
        t.members,
        t.enumerators,
        t.tag,
        base=t,
        kernel=t.kernel,
    )


VOIDP = pointer(VOID)
CHARP = pointer(CHAR)

# The built-in integer type names, by the sorted multiset of specifier words.
_SPECIFIERS: dict[tuple[str, ...], CType] = {}
for _t, _forms in [
    (CHAR, ["char"]),
    (SCHAR, ["signed char"]),
    (UCHAR, ["unsigned char"]),
    (SHORT, ["short", "short int", "signed short", "signed short int"]),
    (USHORT, ["unsigned short", "unsigned short int"]),
    (INT, ["int", "signed", "signed int"]),
    (UINT, ["unsigned", "unsigned int"]),
    (LONG, ["long", "long int", "signed long", "signed long int"]),
    (ULONG, ["unsigned long", "unsigned long int"]),
    (LLONG, ["long long", "long long int", "signed long long", "signed long long int"]),
    (ULLONG, ["unsigned long long", "unsigned long long int"]),
    (BOOL, ["_Bool"]),
    (FLOAT, ["float"]),
    (DOUBLE, ["double"]),
    (LDOUBLE, ["long double"]),
    (VOID, ["void"]),
    (STRING, ["string"]),
]:
    for _f in _forms:
        _SPECIFIERS[tuple(sorted(_f.split()))] = _t

SPECIFIER_WORDS = frozenset(
    {
        "char",
        "short",
        "int",
        "long",
        "signed",
        "unsigned",
        "float",
        "double",
        "void",
        "string",
        "_Bool",
    }
)


def from_specifiers(words: list[str]) -> CType | None:
    """The built-in type named by specifier words such as ['unsigned', 'long']."""
    return _SPECIFIERS.get(tuple(sorted(words)))


# Typedefs every D program sees (dtrace's D library and <sys/types.h> on LP64 Linux).
BUILTIN_TYPEDEFS: dict[str, CType] = {}
for _n, _t in [
    ("int8_t", SCHAR),
    ("int16_t", SHORT),
    ("int32_t", INT),
    ("int64_t", LONG),
    ("uint8_t", UCHAR),
    ("uint16_t", USHORT),
    ("uint32_t", UINT),
    ("uint64_t", ULONG),
    ("intptr_t", LONG),
    ("uintptr_t", ULONG),
    ("size_t", ULONG),
    ("ssize_t", LONG),
    ("off_t", LONG),
    ("off64_t", LONG),
    ("loff_t", LONG),
    ("pid_t", INT),
    ("id_t", INT),
    ("uid_t", UINT),
    ("gid_t", UINT),
    ("dev_t", ULONG),
    ("ino_t", ULONG),
    ("mode_t", UINT),
    ("nlink_t", ULONG),
    ("time_t", LONG),
    ("clock_t", LONG),
    ("caddr_t", CHARP),
    ("uchar_t", UCHAR),
    ("ushort_t", USHORT),
    ("uint_t", UINT),
    ("ulong_t", ULONG),
    ("u_char", UCHAR),
    ("u_short", USHORT),
    ("u_int", UINT),
    ("u_long", ULONG),
    ("longlong_t", LLONG),
    ("u_longlong_t", ULLONG),
    ("hrtime_t", LLONG),
    ("processorid_t", INT),
    ("psetid_t", INT),
    ("chipid_t", INT),
    ("lgrp_id_t", INT),
    ("zoneid_t", INT),
    ("taskid_t", INT),
    ("projid_t", INT),
    ("boolean_t", INT),
    ("bool", BOOL),
    ("uint", UINT),
    ("ipaddr_t", UINT),  # ip.d: a big-endian 32-bit IPv4 address
    ("__be32", UINT),
    ("__be16", USHORT),
    ("__be64", ULLONG),
    ("major_t", UINT),
    ("minor_t", UINT),
    ("__u8", UCHAR),
    ("__u16", USHORT),
    ("__u32", UINT),
    ("__u64", ULLONG),
    ("__s8", SCHAR),
    ("__s16", SHORT),
    ("__s32", INT),
    ("__s64", LLONG),
    ("u8", UCHAR),
    ("u16", USHORT),
    ("u32", UINT),
    ("u64", ULLONG),
    ("s8", SCHAR),
    ("s16", SHORT),
    ("s32", INT),
    ("s64", LLONG),
]:
    BUILTIN_TYPEDEFS[_n] = typedef(_n, _t)


# --- arithmetic --------------------------------------------------------------


def wrap(value: int, t: CType) -> int:
    """Reduce a Python int to the range of integer type t (two's complement)."""
    return wrapper(t)(value)


def _u64(value: int) -> int:
    return value & 0xFFFFFFFFFFFFFFFF


def _as_bool(value: int) -> int:
    return 1 if value else 0


def _unchanged(value: int) -> int:
    return value


_INT_WRAPPERS: dict[tuple[int, bool], Callable[[int], int]] = {}


def _int_wrapper(size: int, signed: bool) -> Callable[[int], int]:
    """The reduction to a size-byte integer, made once per size and sign."""
    fn = _INT_WRAPPERS.get((size, signed))
    if fn is None:
        mask = (1 << size * 8) - 1
        if signed:
            half = 1 << (size * 8 - 1)
            fn = _INT_WRAPPERS[(size, signed)] = lambda value: ((value + half) & mask) - half
        else:
            fn = _INT_WRAPPERS[(size, signed)] = lambda value: value & mask
    return fn


def wrapper(t: CType) -> Callable[[int], int]:
    """wrap(value, t) as a function of the value alone, decided once: for
    code that runs at every probe firing."""
    r = t.r
    if r.kind == "ptr" or r.kind == "array":
        return _u64
    if r.kind == "enum":
        return _int_wrapper(4, True)
    if r.kind == "int":
        return _as_bool if r is BOOL else _int_wrapper(r.size, r.signed)
    return _unchanged


def rank(t: CType) -> int:
    return {1: 1, 2: 2, 4: 3, 8: 4}.get(t.int_size(), 4)


def promote(t: CType) -> CType:
    """C integer promotion: anything narrower than int becomes int."""
    r = t.r
    if r.kind == "enum":
        return INT
    if r.kind == "int" and r.size < 4:
        return INT
    return t


def arith_conv(a: CType, b: CType) -> CType:
    """C's usual arithmetic conversions on two integer types."""
    a, b = promote(a), promote(b)
    ra, rb = a.r, b.r
    if ra.kind == "float" or rb.kind == "float":
        return ra if ra.kind == "float" and (rb.kind != "float" or ra.size >= rb.size) else rb
    if ra.size == rb.size and ra.signed == rb.signed:
        return a
    if ra.signed == rb.signed:
        return a if ra.size > rb.size else b
    unsigned, signed = (a, b) if not ra.signed else (b, a)
    if unsigned.r.size >= signed.r.size:
        return unsigned
    return signed  # the signed type is wider, so it holds every unsigned value


def d_arith_conv(a: CType, b: CType) -> CType:
    """D's conversion of two integer operands (dt_type_promote): no promotion
    to int; the type of greater rank wins, rank being its bits plus one if
    unsigned (so unsigned char + signed char stays unsigned char); on equal
    rank, the left one. Enums count as int; floats follow C."""
    a = INT if a.r.kind == "enum" else a
    b = INT if b.r.kind == "enum" else b
    ra, rb = a.r, b.r
    if ra.kind != "int" or rb.kind != "int":
        return arith_conv(a, b)
    rank_a = ra.size * 8 + (not ra.signed)
    rank_b = rb.size * 8 + (not rb.signed)
    return b if rank_b > rank_a else a
