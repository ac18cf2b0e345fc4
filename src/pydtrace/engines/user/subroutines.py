"""D subroutines that need no kernel, for the user-space engine.

Each takes (state, firing, pc, *args) and returns the value; faults raise
ProbeFault. Strings are Python str; the caller cuts results to strsize.
"""

from __future__ import annotations

import posixpath
import random
from collections.abc import Callable

from pydtrace.consume.records import BADADDR, BADSIZE, ILLOP
from pydtrace.engines.user.faults import ProbeFault
from pydtrace.engines.user.memory import string_bytes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_rng = random.Random()


def _fault(code: int, value: int, pc: int) -> Any:
    raise ProbeFault(code, value, pc)


def _strlen(st, f, pc, s: str) -> int:
    return len(s.encode("utf-8", "surrogateescape"))


def _strjoin(st, f, pc, a: str, b: str) -> str:
    return a + b


def _substr(st, f, pc, s: str, index: int, length: int | None = None) -> str:
    n = len(s)
    if index < 0:
        index += n
        if index < 0:
            if length is not None:
                # the part before the string's start counts against the length
                length += index
                if length <= 0:
                    return ""
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
    return NULL_STRING if i < 0 else s[i:]


def _strchr(st, f, pc, s: str, c: int) -> str:
    ch = chr(c & 0xFF)
    i = s.find(ch)
    return "" if i < 0 else s[i:]


def _strrchr(st, f, pc, s: str, c: int) -> str:
    ch = chr(c & 0xFF)
    i = s.rfind(ch)
    return "" if i < 0 else s[i:]


class NullString(str):
    """A string subroutine's NULL result (strstr with no match, strtok with no
    token left). It reads as "" and compares equal to NULL, but an action or
    subroutine that must read the string faults on it, as dtrace does."""


NULL_STRING = NullString("")


def _strtok(st, f, pc, s: str | int, delim: str) -> str:
    # strtok(NULL, d) continues the string saved for this thread; D passes NULL as 0
    if isinstance(s, NullString):
        _fault(BADADDR, 0, pc)
    if isinstance(s, int):
        saved = st.strtok.get(f.tid)
        if saved is None:
            _fault(BADADDR, 0, pc)
        s, pos = saved
    else:
        pos = 0
    n = len(s)
    while pos < n and s[pos] in delim:
        pos += 1
    if pos >= n:
        st.strtok[f.tid] = (s, n)
        return NULL_STRING
    end = pos
    while end < n and s[end] not in delim:
        end += 1
    # the delimiter that ended the token is not consumed: the next call skips
    # leading delimiters of its own (possibly different) set
    st.strtok[f.tid] = (s, end)
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
    if base is None:  # the value is an int64_t, whatever integer type was passed
        v &= 0xFFFFFFFFFFFFFFFF
        return str(v - (1 << 64) if v >> 63 else v)
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


def _inet_ntoa(st, f, pc, addr: int) -> str:
    return ".".join(str(b) for b in st.mem.read(addr, 4))


def _inet_ntoa6(st, f, pc, addr: int, strict: int = 0) -> str:
    return format_in6(st.mem.read(addr, 16), strict != 0)


def format_in6(data: bytes, strict: bool) -> str:
    """An IPv6 address as dtrace prints it (the eBPF engine's rules): IPv4 in
    IPv6 as dotted decimal (after "::" or "::ffff:" when strict), else 8 hex
    groups without leading zeros, the first longest run of 2+ zero groups "::"."""
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, 16, 2)]
    if not any(words[:5]) and (
        words[5] == 0xFFFF or (words[5] == 0 and (words[6] or words[7] > 1))
    ):
        prefix = ("::ffff:" if words[5] else "::") if strict else ""
        return prefix + ".".join(str(b) for b in data[12:16])
    start, length, run = 8, 0, 0
    for i, w in enumerate(words):
        run = run + 1 if w == 0 else 0
        if run > length:
            start, length = i - run + 1, run
    groups = [f"{w:x}" for w in words]
    if length < 2:
        return ":".join(groups)
    return ":".join(groups[:start]) + "::" + ":".join(groups[start + length :])


def _inet_ntop(st, f, pc, af: int, addr: int) -> str:
    # as dtrace compiles it: AF_INET6 ? inet_ntoa6(addr, 1) : inet_ntoa(addr)
    if af == 10:  # AF_INET6
        return _inet_ntoa6(st, f, pc, addr, 1)
    return _inet_ntoa(st, f, pc, addr)


# ARPHRD_* hardware types and the length of their addresses
_LINK_LENGTHS = {1: 6, 32: 20}


def _link_ntop(st, f, pc, hwtype: int, addr: int) -> str:
    n = _LINK_LENGTHS.get(hwtype)
    if n is None:
        _fault(ILLOP, hwtype, pc)
    return ":".join(f"{b:02x}" for b in st.mem.read(addr, n))


def _alloca(st, f, pc, size: int) -> int:
    return st.mem.alloca(size)


def _bcopy(st, f, pc, src: Any, dst: int, n: int) -> None:
    mem = st.mem
    n = n if n < (1 << 63) else n - (1 << 64)
    if not mem.in_scratch(dst):
        # dtrace only lets bcopy write to scratch (alloca) memory
        _fault(BADADDR, dst, pc)
    if isinstance(src, str):
        data = string_bytes(src)
        data = (data + bytes(max(st.strsize - len(data), 1)))[: max(n, 0)]
        mem.check_copy(dst, n)
        mem.write(dst, data)
        return
    mem.check_copy(src, n)
    mem.check_copy(dst, n)
    mem.write(dst, mem.read(src, n))


def _traced(f, addr: int, pc: int) -> Any:
    """The traced thread a copyin* reads from; no traced process: a fault."""
    t = getattr(f, "process", None)
    if t is None or not hasattr(t, "read"):
        _fault(BADADDR, addr, pc)
    return t


def _copy_size(st, pc, size: int) -> int:
    """copyin's and copyinto's first check, as dtrace's: a size below 0 or
    above scratch space is an invalid size."""
    n = size if size < (1 << 63) else size - (1 << 64)
    if n < 0 or n > st.mem.scratch_size:
        _fault(BADSIZE, size & 0xFFFFFFFFFFFFFFFF, pc)
    return n


def _copyin(st, f, pc, addr: int, size: int) -> int:
    size = _copy_size(st, pc, size)
    dst = st.mem.alloca(size)
    data = _traced(f, addr, pc).read(addr, size)
    if len(data) < size:
        _fault(BADADDR, addr + len(data), pc)
    st.mem.write(dst, data)
    return dst


def _copyinto(st, f, pc, addr: int, size: int, dst: int) -> None:
    # dtrace's order: the size, a NULL source, the destination, the read
    size = _copy_size(st, pc, size)
    if addr == 0:
        _fault(BADADDR, 0, pc)
    if not st.mem.in_scratch(dst):
        _fault(BADADDR, dst, pc)
    st.mem.check_copy(dst, size)
    data = _traced(f, addr, pc).read(addr, size)
    if len(data) < size:
        _fault(BADADDR, addr + len(data), pc)
    st.mem.write(dst, data)


def _copyinstr(st, f, pc, addr: int, size: int | None = None) -> str:
    from pydtrace.engines.user.ptrace.tracer import read_string

    t = _traced(f, addr, pc)
    limit = st.strsize if size is None else min(size, st.strsize)
    data = read_string(t.tid, addr, limit)
    if data is None:
        _fault(BADADDR, addr, pc)
    return data.decode("latin-1")


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
    "copyin": _copyin,
    "copyinstr": _copyinstr,
    "copyinto": _copyinto,
    "inet_ntoa": _inet_ntoa,
    "inet_ntoa6": _inet_ntoa6,
    "inet_ntop": _inet_ntop,
    "alloca": _alloca,
    "link_ntop": _link_ntop,
    "bcopy": _bcopy,
}


def lookup(name: str) -> Callable[..., Any] | None:
    return _TABLE.get(name)
