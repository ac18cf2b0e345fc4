"""print(): dtrace 2.x's typed dump of the object a pointer points to.

The record item is ('print', address, data, ctype): the pointer's value, the
bytes of the object it points to (little-endian, sizeof(ctype) long) and the
pointed-to type.  The output is `0x<address> = *` followed by the object in a
C-initialiser-like layout indented from column 44: one line per member that
is not all zero bytes, nested structs/unions/arrays one column deeper, and
`...` where the printsize option cuts the dump short.
"""

from __future__ import annotations

from pydtrace.lang.dataclass import dataclass, field
from pydtrace.lang.types import CType

START_INDENT = 44  # the column dtrace starts the type display at
MAX_DEPTH = 10  # nesting deeper than this prints "..."
_ZEROS_LIMIT = 65536  # objects this large are never considered all-zero


class _Stop(Exception):
    """The dump ran out of bytes (printsize) or depth: stop visiting."""


@dataclass
class _State:
    data: bytes
    limit: int  # bytes that may be shown
    out: list[str]
    kinds: dict[int, str] = field(default_factory=dict)  # depth -> kind last shown there
    last_depth: int = 0


def format_print(address: int, data: bytes | int, ctype: CType, printsize: int | None) -> str:
    """The text print() writes for the object `data` of type `ctype` at `address`."""
    if isinstance(data, int):
        size = max(ctype.r.size, 1)
        data = (data & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
    limit = len(data) if printsize is None else min(len(data), printsize)
    st = _State(bytes(data), limit, [])
    st.out.append(("0x%x" % address if address else "(nil)") + " = *\n")
    try:
        _visit(st, "", ctype, 0, 0)
    except _Stop:
        pass
    _close(st, 0)
    return "".join(st.out)


def _visit(st: _State, name: str, t: CType, bitoff: int, depth: int, bits: int = 0) -> None:
    """Show one object, then (for a struct/union) its members in order."""
    _show(st, name, t, bitoff, depth, bits)
    r = t.r
    if r.kind in ("struct", "union"):
        for m in r.members or ():
            _visit(st, m.name, m.type, bitoff + 8 * m.offset + m.bit_offset, depth + 1, m.bits)


def _type_name(t: CType) -> str:
    """The name dtrace shows in parentheses: anonymous tags show the bare keyword."""
    if t.base is None and t.kind in ("struct", "union", "enum") and not t.tag:
        return t.kind
    return t.name


def _close(st: _State, depth: int) -> None:
    """Close the braces of struct/unions shown deeper than `depth`."""
    if st.kinds.get(depth) not in ("struct", "union"):
        return
    if depth == 0 and st.last_depth == 0:
        st.last_depth = 1  # the outermost braces always close, even when empty
    for i in range(st.last_depth - depth, 0, -1):
        comma = "," if depth > 0 or i > 1 else ""
        st.out.append(" " * (START_INDENT + depth + i - 1) + "}" + comma + "\n")
        st.last_depth = depth


def _int_at(data: bytes, pos: int, size: int, signed: bool) -> int:
    return int.from_bytes(data[pos : pos + size].ljust(size, b"\0"), "little", signed=signed)


def _show(st: _State, name: str, t: CType, bitoff: int, depth: int, bits: int = 0) -> None:
    indent = " " * (START_INDENT + depth)
    pos = bitoff // 8
    if pos >= st.limit or depth >= MAX_DEPTH:
        st.out.append(indent + "...\n")
        raise _Stop
    if st.last_depth > depth:
        _close(st, depth)
    r = t.r
    size = r.size
    if depth > 0 and size < _ZEROS_LIMIT and not any(st.data[pos : pos + size]):
        return
    st.kinds[depth] = r.kind
    st.last_depth = depth
    tname = _type_name(t)
    text = _value_text(st, r, tname, bitoff, bits)
    if text is None:
        return
    label = f".{name} = " if depth > 0 and name else ""
    st.out.append(indent + label + text + "\n")
    if r.kind == "array":
        _show_elements(st, r, bitoff, depth)


def _value_text(st: _State, r: CType, tname: str, bitoff: int, bits: int) -> str | None:
    """`(type)value,` for one datum (None for kinds print() does not show)."""
    pos = bitoff // 8
    if r.kind in ("struct", "union"):
        return f"({tname}) {{"
    if r.kind == "array":
        return f"({tname}) [" + ("]," if r.count == 0 else "")
    if r.kind == "enum":
        v = _int_at(st.data, pos, 4, True)
        for ename, ev in r.enumerators.items():
            if ev == v:
                return f"({tname}){ename},"
        return f"({tname}){v},"
    if r.kind == "ptr":
        return f"({tname})0x{_int_at(st.data, pos, 8, False):x},"
    if r.kind != "int":
        return None
    if bits and bits != 8 * r.size:
        return _bitfield_text(st, tname, bitoff, bits)
    v = _int_at(st.data, pos, r.size, r.signed)
    if r.size == 1 and tname == "char":
        return f"({tname})'{chr(v & 0xFF)}',"
    return f"({tname}){v},"


def _bitfield_text(st: _State, tname: str, bitoff: int, bits: int) -> str | None:
    """A bit-field, extracted the way dtrace does: from the 64-bit word at its
    first byte, shifted by its bit position modulo 64 (not modulo 8)."""
    word = _int_at(st.data, bitoff // 8, 8, False)
    word = (word << (63 - bitoff % 64)) & 0xFFFFFFFFFFFFFFFF
    v = word >> (64 - bits)
    if v == 0:
        return None  # zero bit-fields are not shown
    return f"({tname}){v},"


def _show_elements(st: _State, r: CType, bitoff: int, depth: int) -> None:
    """Array elements one level deeper (not recursing into element members),
    stopping at the first NUL of a char array; then the closing bracket."""
    assert r.target is not None
    elem = r.target
    esize = elem.r.size
    pos = bitoff // 8
    if not any(st.data[pos : pos + esize * r.count]):
        return
    sub = _State(st.data, st.limit, st.out, last_depth=st.last_depth)
    is_char = elem.r.kind == "int" and esize == 1
    for i in range(r.count):
        if is_char and st.data[pos + i : pos + i + 1] in (b"\0", b""):
            break
        _show(sub, "", elem, bitoff + 8 * esize * i, depth + 1)
    if r.count > 0:
        st.out.append(" " * (START_INDENT + depth) + "],\n")
