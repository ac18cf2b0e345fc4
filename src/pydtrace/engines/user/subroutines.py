"""D subroutines that need no kernel, for the user-space engine.

Each takes (state, firing, pc, *args) and returns the value; faults raise
ProbeFault. Strings are Python str; the caller cuts results to strsize.
"""

from __future__ import annotations

import posixpath
import random
from collections.abc import Callable
from typing import Any

from pydtrace.consume.records import BADADDR, ILLOP

_rng = random.Random()


def _fault(code: int, value: int, pc: int) -> Any:
    from pydtrace.engines.user.interpreter import ProbeFault

    raise ProbeFault(code, value, pc)


def _strlen(st, f, pc, s: str) -> int:
    return len(s.encode())


def _strjoin(st, f, pc, a: str, b: str) -> str:
    return a + b


def _substr(st, f, pc, s: str, index: int, length: int | None = None) -> str:
    n = len(s)
    if index < 0:
        index += n
        if index < 0:
            if length is not None:
                length += index
            index = 0
    if index >= n:
        return ""
    if length is None:
        return s[index:]
    if length < 0:
        end = n + length
        return s[index:end] if end > index else ""
    return s[index : index + length]


def _index(st, f, pc, s: str, sub: str, start: int | None = None) -> int:
    if start is None:
        start = 0
    if start < 0:
        start = 0
    if start > len(s):
        return -1
    return s.find(sub, start)


def _rindex(st, f, pc, s: str, sub: str, start: int | None = None) -> int:
    if start is None:
        return s.rfind(sub)
    if start < 0:
        return -1
    return s.rfind(sub, 0, start + len(sub))


def _strstr(st, f, pc, s: str, sub: str) -> str:
    i = s.find(sub)
    return "" if i < 0 else s[i:]


def _strchr(st, f, pc, s: str, c: int) -> str:
    ch = chr(c & 0xFF)
    i = s.find(ch)
    return "" if i < 0 else s[i:]


def _strrchr(st, f, pc, s: str, c: int) -> str:
    ch = chr(c & 0xFF)
    i = s.rfind(ch)
    return "" if i < 0 else s[i:]


def _strtok(st, f, pc, s: str | None, delim: str) -> str:
    # strtok(NULL, d) continues the string saved for this thread; D passes NULL as 0
    if isinstance(s, int):
        saved = st.strtok.get(f.tid)
        if saved is None:
            return ""
        s, pos = saved
    else:
        pos = 0
    n = len(s)
    while pos < n and s[pos] in delim:
        pos += 1
    if pos >= n:
        st.strtok.pop(f.tid, None)
        return ""
    end = pos
    while end < n and s[end] not in delim:
        end += 1
    st.strtok[f.tid] = (s, end + 1 if end < n else end)
    return s[pos:end]


def _basename(st, f, pc, s: str) -> str:
    if s == "":
        return "."
    t = s.rstrip("/")
    if t == "":
        return "/"
    return t.rsplit("/", 1)[-1]


def _dirname(st, f, pc, s: str) -> str:
    if s == "":
        return "."
    t = s.rstrip("/")
    if t == "":
        return "/"
    if "/" not in t:
        return "."
    d = t.rsplit("/", 1)[0].rstrip("/")
    return d or "/"


def _cleanpath(st, f, pc, s: str) -> str:
    if not s:
        return s
    out = posixpath.normpath(s)
    if s.startswith("//") and not s.startswith("///"):
        out = out.lstrip("/")
        out = "/" + out
    return out


def _lltostr(st, f, pc, v: int, base: int | None = None) -> str:
    if base is None:
        return str(v)
    if base < 2 or base > 36:
        _fault(ILLOP, base, pc)
    if base != 10:
        v &= 0xFFFFFFFFFFFFFFFF
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    neg = v < 0
    v = abs(v)
    out = ""
    while True:
        out = digits[v % base] + out
        v //= base
        if not v:
            break
    if base == 16:
        out = "0x" + out
    elif base == 8:
        out = "0" + out
    return "-" + out if neg else out


def _strtoll(st, f, pc, s: str, base: int | None = None) -> int:
    base = 10 if base is None else base
    t = s.strip()
    try:
        return int(t, base) if t else 0
    except ValueError:
        # like strtoll: the longest valid prefix
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[: base if 2 <= base <= 36 else 10]
        sign = 1
        i = 0
        if t[:1] in "+-":
            sign = -1 if t[0] == "-" else 1
            i = 1
        if base == 16 and t[i : i + 2].lower() == "0x":
            i += 2
        v = 0
        while i < len(t) and t[i].lower() in digits:
            v = v * base + digits.index(t[i].lower())
            i += 1
        return sign * v


def _toupper(st, f, pc, s: str) -> str:
    return "".join(c.upper() if "a" <= c <= "z" else c for c in s)


def _tolower(st, f, pc, s: str) -> str:
    return "".join(c.lower() if "A" <= c <= "Z" else c for c in s)


def _swap(size: int) -> Callable[..., int]:
    def swap(st, f, pc, v: int) -> int:
        return int.from_bytes((v & ((1 << (size * 8)) - 1)).to_bytes(size, "little"), "big")

    return swap


def _rand(st, f, pc) -> int:
    return _rng.getrandbits(32)


def _speculation(st, f, pc) -> int:
    for sid in range(1, st.nspec + 1):
        if sid not in st.spec_busy:
            st.spec_busy[sid] = []
            return sid
    st.spec_drops += 1
    return 0


def _progenyof(st, f, pc, pid: int) -> int:
    p = f.pid
    seen = 0
    while p > 0 and seen < 4096:
        if p == pid:
            return 1
        p = _parent(p)
        seen += 1
    return 0


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            data = fh.read()
        return int(data.rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def _getmajor(st, f, pc, dev: int) -> int:
    return (dev >> 20) & 0xFFF


def _getminor(st, f, pc, dev: int) -> int:
    return dev & 0xFFFFF


def _badaddr(st, f, pc, addr: int, *rest: Any) -> Any:
    _fault(BADADDR, addr, pc)


def _inet_ntoa(st, f, pc, addr: int) -> Any:
    _fault(BADADDR, addr, pc)


_TABLE: dict[str, Callable[..., Any]] = {
    "strlen": _strlen,
    "strjoin": _strjoin,
    "substr": _substr,
    "index": _index,
    "rindex": _rindex,
    "strstr": _strstr,
    "strchr": _strchr,
    "strrchr": _strrchr,
    "strtok": _strtok,
    "basename": _basename,
    "dirname": _dirname,
    "cleanpath": _cleanpath,
    "lltostr": _lltostr,
    "strtoll": _strtoll,
    "toupper": _toupper,
    "tolower": _tolower,
    "htons": _swap(2),
    "ntohs": _swap(2),
    "htonl": _swap(4),
    "ntohl": _swap(4),
    "htonll": _swap(8),
    "ntohll": _swap(8),
    "rand": _rand,
    "speculation": _speculation,
    "progenyof": _progenyof,
    "getmajor": _getmajor,
    "getminor": _getminor,
    "copyin": _badaddr,
    "copyinstr": _badaddr,
    "copyinto": _badaddr,
    "inet_ntoa": _inet_ntoa,
}


def lookup(name: str) -> Callable[..., Any] | None:
    return _TABLE.get(name)
