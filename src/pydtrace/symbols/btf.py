"""Kernel type layouts from BTF (/sys/kernel/btf/vmlinux), so generated code can read kernel
structs (task_struct->real_parent->tgid ...) without headers.

BTF format (include/uapi/linux/btf.h): a header {u16 magic 0xeB9F, u8 version, u8 flags,
u32 hdr_len, u32 type_off, u32 type_len, u32 str_off, u32 str_len} (offsets count from the end
of the header), a type section and a NUL-separated string section. Each type is
{u32 name_off, u32 info (vlen bits 0-15, kind bits 24-28, kind_flag bit 31), u32 size|type}
followed by kind-specific data; ids count from 1 (0 is void).

Loading is lazy and cheap: one pass over the type section records where each type starts and
which named aggregates exist (by string offset; names are decoded only on demand).
"""

from __future__ import annotations

import bisect
import mmap
import os
import struct

from pydtrace.lang.dataclass import dataclass

VMLINUX = "/sys/kernel/btf/vmlinux"
MAGIC = 0xEB9F

INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF = 1, 2, 3, 4, 5, 6, 7, 8
VOLATILE, CONST, RESTRICT, FUNC, FUNC_PROTO, VAR, DATASEC = 9, 10, 11, 12, 13, 14, 15
FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = 16, 17, 18, 19

KIND_NAMES = {
    0: "void",
    INT: "int",
    PTR: "ptr",
    ARRAY: "array",
    STRUCT: "struct",
    UNION: "union",
    ENUM: "enum",
    FWD: "fwd",
    TYPEDEF: "typedef",
    VOLATILE: "volatile",
    CONST: "const",
    RESTRICT: "restrict",
    FUNC: "func",
    FUNC_PROTO: "func_proto",
    VAR: "var",
    DATASEC: "datasec",
    FLOAT: "float",
    DECL_TAG: "decl_tag",
    TYPE_TAG: "type_tag",
    ENUM64: "enum64",
}

# INT encoding bits
INT_SIGNED = 1
INT_CHAR = 2
INT_BOOL = 4

# 32-bit words of kind-specific data after the 3-word header: (fixed, per vlen entry)
_EXTRA = {
    INT: (1, 0),
    ARRAY: (3, 0),
    STRUCT: (0, 3),
    UNION: (0, 3),
    ENUM: (0, 2),
    FUNC_PROTO: (0, 2),
    VAR: (1, 0),
    DATASEC: (0, 3),
    DECL_TAG: (1, 0),
    ENUM64: (0, 3),
}
_MODIFIERS = frozenset({TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG})
_QUALIFIERS = frozenset({VOLATILE, CONST, RESTRICT, TYPE_TAG})


class BTFError(LookupError):
    """A type or member is not in the kernel's BTF; str() is a sentence."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "BTF lookup failed"


@dataclass(frozen=True)
class Member:
    name: str  # "" for an anonymous struct/union member
    type: int
    bit_offset: int
    bitfield_size: int  # 0 unless a bit-field


@dataclass(frozen=True)
class Access:
    """One load step of a member path: read `size` bytes at `offset` of the current object.

    is_pointer: the value read is a pointer; the next step of the path applies to the object it
    points to (generated code loads it, checks it, and adds the next offset).
    bit_shift/bit_size: for a bit-field, shift right by bit_shift (little-endian) and keep
    bit_size bits of the `size`-byte unit read.
    """

    offset: int
    size: int
    is_pointer: bool
    type: int  # BTF id of the member's type (modifiers kept)
    signed: bool = False
    bit_shift: int = 0
    bit_size: int = 0
    name: str = ""


class BTF:
    """Parsed BTF blob. Build with BTF.load(path) or vmlinux() (cached)."""

    def __init__(self, data: bytes):
        if len(data) < 24:
            raise BTFError("BTF data too short")
        magic, _version, _flags, hdr_len = struct.unpack_from("<HBBI", data, 0)
        if magic != MAGIC:
            raise BTFError(f"not BTF data (magic {magic:#x})")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", data, 8)
        self.data = data
        self._types = memoryview(data)[hdr_len + type_off : hdr_len + type_off + type_len]
        self._types_start = hdr_len + type_off
        self._datasec_ids: list[int] | None = None
        self._strings = data[hdr_len + str_off : hdr_len + str_off + str_len]
        self._offsets: list[int] = [0]  # word index of each type; [0] is void
        self._by_name_off: dict[int, list[int]] = {}
        self._name_cache: dict[str, int | None] = {}
        self._words = self._types.cast("I")
        # The pass over the types runs as far as a lookup needs (types are
        # found in id order): vmlinux has some 125000, and the ones a program
        # names (task_struct, its files, its path) come in the first
        # thousands; a whole pass costs a one-liner 60 ms of its start-up.
        self._pos = 0  # word index the pass has reached
        self._complete = False

    @classmethod
    def load(cls, path: str = VMLINUX) -> BTF:
        return cls(read_blob(path))

    # -- the one pass, as far as needed

    def _scan(self, until: int = -1, names: frozenset[int] = frozenset()) -> None:
        """Index types in id order from where the pass stopped: all of them,
        or until type id `until` is indexed, or until a type whose name is
        at a string offset in `names` is (then its id is the last one)."""
        if self._complete:
            return
        words = self._words
        n = len(words)
        offsets = self._offsets
        named = self._by_name_off
        extra = _EXTRA
        wanted = (STRUCT, UNION, TYPEDEF, ENUM, ENUM64, INT, FLOAT, FWD)
        i = self._pos
        append = offsets.append
        while i < n:
            append(i)
            name_off = words[i]
            info = words[i + 1]
            kind = (info >> 24) & 0x1F
            e = extra.get(kind)
            i += 3 if e is None else 3 + e[0] + e[1] * (info & 0xFFFF)
            if name_off and kind in wanted:
                lst = named.get(name_off)
                if lst is None:
                    named[name_off] = [len(offsets) - 1]
                else:
                    lst.append(len(offsets) - 1)
                if name_off in names:
                    break
            if len(offsets) - 1 == until:
                break
        self._pos = i
        if i >= n:
            self._complete = True

    # -- raw access

    def __len__(self) -> int:
        self._scan()
        return len(self._offsets) - 1

    def string(self, off: int) -> str:
        end = self._strings.index(b"\0", off)
        return self._strings[off:end].decode("utf-8", "replace")

    def _header(self, tid: int) -> tuple[int, int, int, int, int]:
        """(word index, name_off, kind, vlen, size_or_type)."""
        if tid >= len(self._offsets):
            self._scan(until=tid)
        if tid <= 0 or tid >= len(self._offsets):
            raise BTFError(f"BTF type id {tid} out of range")
        i = self._offsets[tid]
        w = self._words
        info = w[i + 1]
        return i, w[i], (info >> 24) & 0x1F, info & 0xFFFF, w[i + 2]

    def kind(self, tid: int) -> int:
        return 0 if tid == 0 else self._header(tid)[2]

    def name(self, tid: int) -> str:
        return "" if tid == 0 else self.string(self._header(tid)[1])

    def ref(self, tid: int) -> int:
        """The type a typedef, pointer, qualifier, FUNC or VAR refers to (the
        size_or_type word; a FUNC's is its FUNC_PROTO, a FUNC_PROTO's its
        return type)."""
        return 0 if tid == 0 else self._header(tid)[4]

    def kind_flag(self, tid: int) -> bool:
        i = self._header(tid)[0]
        return bool(self._words[i + 1] >> 31)

    # -- lookups by name

    def find(self, name: str, kind: int | None = None) -> int:
        """The id of the type named `name` ("task_struct", "pid_t"; "struct x" / "union x" /
        "enum x" select the kind). Complete definitions win over forward declarations."""
        for prefix, k in (("struct ", STRUCT), ("union ", UNION), ("enum ", ENUM)):
            if name.startswith(prefix):
                name, kind = name[len(prefix) :].strip(), k
        if not self._complete:  # index on until a complete definition of the name
            tid = self._find_early(name, kind)
            if tid is not None:
                return tid
        off = self._string_offset(name)
        ids = self._by_name_off.get(off, []) if off is not None else []
        best = None
        for tid in ids:
            k = self._header(tid)[2]
            if _kind_matches(k, kind):
                if k != FWD:
                    return tid
                best = tid
        if best is not None:
            return best
        what = {STRUCT: "struct ", UNION: "union ", ENUM: "enum "}.get(kind or 0, "")
        raise BTFError(f"kernel BTF has no type {what}{name}")

    def _find_early(self, name: str, kind: int | None) -> int | None:
        """find()'s answer while the pass is partial: the first complete
        definition in id order, as the whole index would give it; None if
        the pass ends without one (find() then looks in the whole index)."""
        names = frozenset(self._name_offsets(name))  # one: BTF's strings are deduplicated
        if not names:
            return None
        while True:
            for tid in sorted(t for off in names for t in self._by_name_off.get(off, ())):
                k = self._header(tid)[2]
                if k != FWD and _kind_matches(k, kind):
                    return tid
            if self._complete:
                return None
            self._scan(names=names)

    def _string_offset(self, name: str) -> int | None:
        self._scan()  # a name not in the index yet may be further on
        if name in self._name_cache:
            return self._name_cache[name]
        self._name_cache[name] = off = self._find_string(name)
        return off

    def _find_string(self, name: str) -> int | None:
        return next((off for off in self._name_offsets(name) if off in self._by_name_off), None)

    def _name_offsets(self, name: str) -> list[int]:
        """The string-section offsets of the string `name`, in order."""
        needle = b"\0" + name.encode() + b"\0"
        offs = []
        pos = self._strings.find(needle)
        while pos >= 0:
            offs.append(pos + 1)
            pos = self._strings.find(needle, pos + 1)
        return offs

    def find_symbol(self, name: str, kind: int) -> int | None:
        """The id of the FUNC or VAR called name (not in the one pass's index:
        there are tens of thousands, and a program names few): the type
        section is searched for a word-aligned record {name offset, info},
        info being the kind with a FUNC's linkage (static, global, extern) in
        vlen, or a VAR's none."""
        self._scan()  # the record's id is its place among all the types
        data, start = self.data, self._types_start
        end = start + len(self._types)
        for off in self._name_offsets(name):
            for linkage in (0, 1, 2) if kind == FUNC else (0,):
                record = struct.pack("<II", off, kind << 24 | linkage)
                pos = data.find(record, start, end)
                while pos >= 0:
                    word, misaligned = divmod(pos - start, 4)
                    tid = bisect.bisect_left(self._offsets, word)
                    if not misaligned and tid < len(self._offsets) and self._offsets[tid] == word:
                        return tid
                    pos = data.find(record, pos + 1, end)
        return None

    def datasec_offset(self, var: int) -> tuple[str, int] | None:
        """(section, offset in it) of a VAR, from the DATASEC that lists it."""
        for tid in self._datasecs():
            i, name_off, _, vlen, _ = self._header(tid)
            w = self._words
            for j in range(i + 3, i + 3 + 3 * vlen, 3):
                if w[j] == var:
                    return self.string(name_off), w[j + 1]
        return None

    def _datasecs(self) -> list[int]:
        if self._datasec_ids is None:
            self._scan()
            self._datasec_ids = [t for t in range(1, len(self._offsets)) if self.kind(t) == DATASEC]
        return self._datasec_ids

    # -- structure

    def skip_modifiers(self, tid: int) -> int:
        """Follow typedef/const/volatile/restrict/type_tag to the underlying type."""
        for _ in range(64):
            if tid == 0:
                return 0
            _, _, kind, _, ref = self._header(tid)
            if kind not in _MODIFIERS:
                return tid
            tid = ref
        raise BTFError("BTF modifier chain too long")

    def size_of(self, tid: int) -> int:
        """sizeof the type in bytes (pointers 8; arrays element size * count)."""
        tid = self.skip_modifiers(tid)
        if tid == 0:
            raise BTFError("sizeof(void)")
        i, _, kind, vlen, size = self._header(tid)
        if kind in (INT, STRUCT, UNION, ENUM, ENUM64, FLOAT, DATASEC):
            return size
        if kind == PTR:
            return 8
        if kind == ARRAY:
            elem, _index, nelems = self._words[i + 3 : i + 6]
            return self.size_of(elem) * nelems
        raise BTFError(f"type {self.type_name(tid)} has no size")

    def int_info(self, tid: int) -> tuple[bool, int, int]:
        """(signed, bit offset, bits) of an INT type."""
        tid = self.skip_modifiers(tid)
        i, _, kind, _, _ = self._header(tid)
        if kind != INT:
            raise BTFError(f"{self.type_name(tid)} is not an integer type")
        enc = self._words[i + 3]
        return bool((enc >> 24) & INT_SIGNED), (enc >> 16) & 0xFF, enc & 0xFF

    def is_signed(self, tid: int) -> bool:
        tid = self.skip_modifiers(tid)
        kind = self.kind(tid)
        if kind == INT:
            return self.int_info(tid)[0]
        if kind in (ENUM, ENUM64):
            return self.kind_flag(tid)
        return False

    def array_info(self, tid: int) -> tuple[int, int]:
        """(element type id, number of elements) of an ARRAY type."""
        tid = self.skip_modifiers(tid)
        i, _, kind, _, _ = self._header(tid)
        if kind != ARRAY:
            raise BTFError(f"{self.type_name(tid)} is not an array")
        return self._words[i + 3], self._words[i + 5]

    def pointee(self, tid: int) -> int:
        tid = self.skip_modifiers(tid)
        _, _, kind, _, ref = self._header(tid)
        if kind != PTR:
            raise BTFError(f"{self.type_name(tid)} is not a pointer")
        return ref

    def members(self, tid: int) -> list[Member]:
        """Members of a struct or union (anonymous ones with name "")."""
        tid = self.skip_modifiers(tid)
        i, _, kind, vlen, _ = self._header(tid)
        if kind not in (STRUCT, UNION):
            raise BTFError(f"{self.type_name(tid)} is not a struct or union")
        bitfields = self.kind_flag(tid)
        w = self._words
        out = []
        for j in range(i + 3, i + 3 + 3 * vlen, 3):
            name_off, mtype, off = w[j], w[j + 1], w[j + 2]
            if bitfields:
                out.append(Member(self.string(name_off), mtype, off & 0xFFFFFF, off >> 24))
            else:
                out.append(Member(self.string(name_off), mtype, off, 0))
        return out

    def enum_values(self, tid_or_name: int | str) -> dict[str, int]:
        tid = self.find(tid_or_name, ENUM) if isinstance(tid_or_name, str) else tid_or_name
        tid = self.skip_modifiers(tid)
        i, _, kind, vlen, _ = self._header(tid)
        w = self._words
        signed = self.kind_flag(tid)
        out = {}
        if kind == ENUM:
            for j in range(i + 3, i + 3 + 2 * vlen, 2):
                v = w[j + 1]
                out[self.string(w[j])] = v - (1 << 32) if signed and v >> 31 else v
        elif kind == ENUM64:
            for j in range(i + 3, i + 3 + 3 * vlen, 3):
                v = w[j + 1] | w[j + 2] << 32
                out[self.string(w[j])] = v - (1 << 64) if signed and v >> 63 else v
        else:
            raise BTFError(f"{self.type_name(tid)} is not an enum")
        return out

    def find_member(self, tid: int, name: str) -> tuple[int, Member] | None:
        """(bit offset from the start of tid, member) of `name`, searching anonymous members."""
        for m in self.members(tid):
            if m.name == name:
                return m.bit_offset, m
            if not m.name:
                inner = self.skip_modifiers(m.type)
                if self.kind(inner) in (STRUCT, UNION):
                    found = self.find_member(inner, name)
                    if found is not None:
                        return m.bit_offset + found[0], found[1]
        return None

    # -- member paths

    def resolve_path(self, root: str | int, *path: str) -> list[Access]:
        """Accesses reading root->a.b->c...: one Access per load.

        Names may also be given dotted ("signal.tty" or "real_parent->tgid"). Embedded
        struct members add up into one offset; a pointer member ends an Access (is_pointer),
        and the names after it are looked up in the pointed-to struct.
        """
        names = [p for part in path for p in part.replace("->", ".").split(".") if p]
        if not names:
            raise BTFError("empty member path")
        cur = self.find(root, STRUCT) if isinstance(root, str) else root
        cur_name = self.type_name(cur)
        out: list[Access] = []
        bits = 0
        for k, name in enumerate(names):
            agg = self.skip_modifiers(cur)
            if self.kind(agg) not in (STRUCT, UNION):
                raise BTFError(f"{cur_name} is not a struct or union (looking up {name})")
            found = self.find_member(agg, name)
            if found is None:
                raise BTFError(f"{self.type_name(agg)} has no member {name}")
            mbits, m = found
            bits += mbits
            mtype = self.skip_modifiers(m.type)
            mkind = self.kind(mtype)
            last = k == len(names) - 1
            if m.bitfield_size:
                if not last:
                    raise BTFError(f"bit-field {name} has no members")
                start = bits // 8
                shift = bits % 8
                size = _unit(shift + m.bitfield_size)
                out.append(
                    Access(
                        start,
                        size,
                        False,
                        m.type,
                        self.is_signed(mtype),
                        shift,
                        m.bitfield_size,
                        name,
                    )
                )
                return out
            if mkind == PTR:
                out.append(Access(bits // 8, 8, True, m.type, False, 0, 0, name))
                bits = 0
                cur = self.pointee(mtype)
                cur_name = self.type_name(cur)
                continue
            if last:
                size = self.size_of(mtype) if mkind not in (FUNC_PROTO,) else 0
                out.append(
                    Access(bits // 8, size, False, m.type, self.is_signed(mtype), 0, 0, name)
                )
                return out
            cur = mtype
            cur_name = self.type_name(mtype)
        return out

    def member_offset(self, root: str | int, *path: str) -> int:
        """Byte offset of root.a.b (embedded members only; no pointer may be crossed)."""
        acc = self.resolve_path(root, *path)
        if len(acc) > 1:
            crossed = ".".join(a.name for a in acc[:-1])
            raise BTFError(f"member path crosses pointer {crossed}: use resolve_path")
        return acc[0].offset

    # -- names

    def type_name(self, tid: int) -> str:
        """C-ish spelling of a type: "struct task_struct *", "pid_t", "char [16]"."""
        if tid == 0:
            return "void"
        i, name_off, kind, _, ref = self._header(tid)
        name = self.string(name_off) if name_off else ""
        if kind in (STRUCT, UNION):
            return f"{KIND_NAMES[kind]} {name or '<anon>'}"
        if kind in (ENUM, ENUM64):
            return f"enum {name or '<anon>'}"
        if kind == FWD:
            return f"{'union' if self.kind_flag(tid) else 'struct'} {name}"
        if kind == PTR:
            inner = self.type_name(ref)
            return inner + ("*" if inner.endswith("*") else " *")
        if kind in _QUALIFIERS:
            return f"{KIND_NAMES[kind] if kind != TYPE_TAG else ''} {self.type_name(ref)}".strip()
        if kind == ARRAY:
            elem, nelems = self._words[i + 3], self._words[i + 5]
            return f"{self.type_name(elem)} [{nelems}]"
        if kind == FUNC_PROTO:
            return f"{self.type_name(ref)} (*)()"
        return name or KIND_NAMES.get(kind, "?")


def _kind_matches(k: int, kind: int | None) -> bool:
    """Is a type of kind k one find() asked for (None: any; enum: either width)?"""
    return kind is None or k == kind or (kind == ENUM and k == ENUM64)


def _unit(bits: int) -> int:
    for size in (1, 2, 4, 8):
        if bits <= size * 8:
            return size
    return 16


def read_blob(path: str = VMLINUX) -> bytes:
    """The bytes of a BTF file. sysfs hands a bin attribute out a page per
    read(2) call (vmlinux's 5 MB: 1,340 calls, 5-13 ms of every start that
    names a kernel type); since Linux 6.16 vmlinux's may be mapped, and a
    copy of the mapping takes 3 ms. (The mapping itself is not kept: Python's
    mmap keeps a descriptor open for as long as it lives.)"""
    try:
        with open(path, "rb", buffering=0) as f:
            try:
                with mmap.mmap(f.fileno(), 0, mmap.MAP_PRIVATE, mmap.PROT_READ) as m:
                    return m[:]
            except (OSError, ValueError):
                pass  # EACCES before 6.16, or an empty or unmappable file
            size = os.fstat(f.fileno()).st_size or os.stat(path).st_size
            buf = bytearray(size)
            view = memoryview(buf)
            got = 0
            while got < size:
                n = f.readinto(view[got:])
                if not n:
                    break
                got += n
            rest = f.read()  # a file longer than it said (not sysfs's)
            return bytes(buf[:got]) + (rest or b"")
    except FileNotFoundError:
        raise BTFError(
            f"no kernel BTF at {path} (kernel built without CONFIG_DEBUG_INFO_BTF)"
        ) from None


def has_typedef(data: bytes, name: str) -> bool:
    """Does the BTF blob `data` define a typedef called name? Answered from
    the raw bytes, without the one pass over every type: a TYPEDEF record is
    {name offset, info = kind 8, no vlen, no flag}, searched for word-aligned."""
    hdr_len = struct.unpack_from("<I", data, 4)[0]
    type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", data, 8)
    s0, t0 = hdr_len + str_off, hdr_len + type_off
    needle = b"\0" + name.encode() + b"\0"
    pos = data.find(needle, s0, s0 + str_len)
    while pos >= 0:
        record = struct.pack("<II", pos + 1 - s0, TYPEDEF << 24)
        at = data.find(record, t0, t0 + type_len)
        while at >= 0:
            if (at - t0) % 4 == 0:
                return True
            at = data.find(record, at + 1, t0 + type_len)
        pos = data.find(needle, pos + 1, s0 + str_len)
    return False


_vmlinux: BTF | None = None


def vmlinux() -> BTF:
    """The running kernel's BTF, loaded on first use (BTFError when the kernel has none)."""
    global _vmlinux
    if _vmlinux is None:
        _vmlinux = BTF.load(VMLINUX)
    return _vmlinux


def vmlinux_from(data: bytes) -> BTF:
    """The running kernel's BTF from its bytes, already read (kernel_types
    reads them to answer typedef questions cheaply); the one vmlinux() gives."""
    global _vmlinux
    if _vmlinux is None:
        _vmlinux = BTF(data)
    return _vmlinux


def loaded() -> BTF | None:
    """The running kernel's BTF if something has loaded it already."""
    return _vmlinux


def available() -> bool:
    import os

    return os.path.exists(VMLINUX)
