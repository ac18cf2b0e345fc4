"""Type compatibility: which value types a variable, a key, a prototype's
parameter or a string comparison accepts.
"""

from __future__ import annotations

from pydtrace.lang.errors import DError
from pydtrace.lang.types import CType


def assignable(t: CType, vt: CType) -> bool:
    """May a value of type vt be stored in (or define, for an inline) type t."""
    if t.is_arith() and vt.is_arith():
        return True
    if t.is_string():
        return vt.is_string() or vt.is_char_array()
    if t.is_char_array():
        return vt.is_string() or vt.is_char_array()
    if t.is_pointer():
        if vt.is_pointer() or vt.is_array():
            return True
        return vt.is_int()
    if t.is_int() and vt.is_pointer():
        return True
    return t.same(vt)


def stringish(t: CType) -> bool:
    """A string, a char array or a pointer to 1-byte data: comparable as strings."""
    return (
        t.is_string()
        or t.is_char_array()
        or (t.is_pointer() and t.r.target is not None and t.r.target.r.size == 1)
    )


def arg_ok(want: CType, got: CType) -> bool:
    """May an argument of type got be passed for a prototype's parameter of type want."""
    if want.is_pointer() and want.r.target is not None and want.r.target.is_struct():
        # a pointer to a structure takes only a pointer to it, a void * or an integer
        target = got.r.target if got.is_pointer() else None
        return got.is_int() or (
            target is not None and (target.is_void() or target.r.name == want.r.target.r.name)
        )
    if want.is_string():
        return stringish(got)
    if want.is_arith():
        return got.is_arith() or (got.is_pointer() and want.int_size() == 8)
    if want.is_pointer():
        return got.is_pointer() or got.is_array() or got.is_string() or got.is_int()
    return True


def check_keys(shown: str, want: list[CType], got: list[CType], line: int) -> None:
    """Keys passed to an aggregation or associative array (shown as named in
    messages) against the key signature it was first used with."""
    if len(got) != len(want):
        n = len(got)
        raise DError(
            "D_PROTO_LEN",
            f"{shown}[ ] prototype mismatch: {n} key{'s' if n != 1 else ''} passed, {len(want)} expected",
            line,
        )
    for i, (a, b) in enumerate(zip(want, got)):
        if not key_compatible(a, b):
            raise DError(
                "D_PROTO_ARG",
                f"{shown}[ ] key #{i + 1} is incompatible with prototype:\n\tprototype: {a.name}\n\t      key: {b.name}",
                line,
            )


def key_compatible(a: CType, b: CType) -> bool:
    """May a key of type b be used where a key signature has type a."""
    if a.is_arith() and b.is_arith():
        return True
    if (a.is_string() or a.is_char_array()) and (b.is_string() or b.is_char_array()):
        return True
    if a.r.kind == "stack" and b.r.kind == "stack":
        return True
    if a.is_pointer() and (b.is_pointer() or b.is_int()):
        return True
    if a.is_int() and b.is_pointer():
        return True
    return a.same(b)
