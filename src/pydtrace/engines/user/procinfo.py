"""psinfo_t and lwpsinfo_t for a process or thread, filled from /proc.

curpsinfo, curlwpsinfo and the proc provider's args[] point at these. The
user-space engine builds them on demand, as bytes laid out like the D
library's structures (lang/procfs.py), and places them in its memory model.
"""

from __future__ import annotations

import os
import struct

from pydtrace.lang.checker import library_types, member_offsets

PR_MODEL_LP64 = 2
# lwpsinfo pr_state values (Solaris' numbering, kept by dtrace) by /proc state letter
_STATES = {"S": 1, "D": 1, "I": 1, "R": 2, "Z": 3, "X": 3, "T": 4, "t": 4}
_NAMES = {1: "S", 2: "R", 3: "Z", 4: "T"}
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _stat_fields(path: str) -> list[bytes]:
    """The fields of /proc/.../stat after the comm (which may hold spaces):
    index 0 is the state letter, as field 3 of proc(5)."""
    data = _read(path)
    close = data.rfind(b")")
    return data[close + 2 :].split() if close >= 0 else []


def _status(path: str) -> dict[str, str]:
    out = {}
    for line in _read(path).decode(errors="replace").splitlines():
        key, _, val = line.partition(":")
        out[key] = val.strip()
    return out


def _field(fields: list[bytes], n: int) -> int:
    """proc(5) field number n (1-based) of a stat line split by _stat_fields."""
    try:
        return int(fields[n - 3])
    except (IndexError, ValueError):
        return 0


def _ids(status: dict[str, str], key: str) -> list[int]:
    try:
        return [int(x) for x in status.get(key, "").split()]
    except ValueError:
        return []


def _put(buf: bytearray, members: dict, name: str, value: int | bytes) -> None:
    off, t = members[name]
    r = t.resolve()
    if isinstance(value, bytes):
        n = r.size
        buf[off : off + n] = value[: n - 1].ljust(n, b"\0")
        return
    fmt = {1: "b", 2: "h", 4: "i", 8: "q"}[r.size]
    if not r.signed:
        fmt = fmt.upper()
    struct.pack_into(
        "<" + fmt, buf, off, value & ((1 << (8 * r.size)) - 1) if not r.signed else value
    )


def lwpsinfo(pid: int, tid: int) -> bytes:
    """An lwpsinfo_t for thread tid of process pid."""
    size = library_types()["lwpsinfo_t"].resolve().size
    buf = bytearray(size)
    m = member_offsets("lwpsinfo_t")
    base = f"/proc/{pid}/task/{tid}"
    fields = _stat_fields(base + "/stat")
    state_letter = fields[0].decode() if fields else "R"
    state = _STATES.get(state_letter, 1)
    _put(buf, m, "pr_lwpid", tid)
    _put(buf, m, "pr_state", state)
    _put(buf, m, "pr_sname", ord(_NAMES.get(state, "S")))
    _put(buf, m, "pr_nice", _field(fields, 19))
    _put(buf, m, "pr_pri", _field(fields, 18))
    _put(buf, m, "pr_onpro", _field(fields, 39))
    _put(buf, m, "pr_bindpro", -1)
    _put(buf, m, "pr_bindpset", -1)
    nr = _read(base + "/syscall").split(b" ", 1)[0]
    _put(buf, m, "pr_syscall", int(nr) if nr.lstrip(b"-").isdigit() and int(nr) >= 0 else 0)
    _put(buf, m, "pr_name", _read(base + "/comm").rstrip(b"\n"))
    _put(buf, m, "pr_clname", b"TS")
    _times(buf, m, fields)
    return bytes(buf)


def psinfo(pid: int, tid: int | None = None) -> bytes:
    """A psinfo_t for process pid; its pr_lwp describes thread tid (default: pid)."""
    size = library_types()["psinfo_t"].resolve().size
    buf = bytearray(size)
    m = member_offsets("psinfo_t")
    base = f"/proc/{pid}"
    fields = _stat_fields(base + "/stat")
    status = _status(base + "/status")
    uids, gids = _ids(status, "Uid"), _ids(status, "Gid")
    _put(buf, m, "pr_nlwp", int(status.get("Threads", "1") or 1))
    _put(buf, m, "pr_pid", pid)
    _put(buf, m, "pr_ppid", _field(fields, 4))
    _put(buf, m, "pr_pgid", _field(fields, 5))
    _put(buf, m, "pr_sid", _field(fields, 6))
    if len(uids) >= 2:
        _put(buf, m, "pr_uid", uids[0])
        _put(buf, m, "pr_euid", uids[1])
    if len(gids) >= 2:
        _put(buf, m, "pr_gid", gids[0])
        _put(buf, m, "pr_egid", gids[1])
    _put(buf, m, "pr_size", _kb(status.get("VmSize", "")))
    _put(buf, m, "pr_rssize", _kb(status.get("VmRSS", "")))
    _times(buf, m, fields)
    child = (_field(fields, 16) + _field(fields, 17)) * 1_000_000_000 // _CLK_TCK
    _timestruc(buf, m["pr_ctime"][0], child)
    _put(buf, m, "pr_fname", _read(base + "/comm").rstrip(b"\n"))
    args = _read(base + "/cmdline").rstrip(b"\0").split(b"\0")
    _put(buf, m, "pr_psargs", b" ".join(args))
    _put(buf, m, "pr_argc", len(args) if args != [b""] else 0)
    _put(buf, m, "pr_dmodel", PR_MODEL_LP64)
    off = m["pr_lwp"][0]
    lwp = lwpsinfo(pid, pid if tid is None else tid)
    buf[off : off + len(lwp)] = lwp
    return bytes(buf)


def cpu_time_ns(tid: int) -> int:
    """A thread's time on a CPU (its first schedstat field, the scheduler's
    sum_exec_runtime): exact for a stopped tracee, which was switched out;
    0 when it cannot be read."""
    data = _read(f"/proc/{tid}/schedstat").split()
    return int(data[0]) if data else 0


def tgid_of(tid: int) -> int:
    """The process (thread group) a thread belongs to; tid itself if unknown."""
    try:
        return int(_status(f"/proc/{tid}/status").get("Tgid", ""))
    except ValueError:
        return tid


def parent_of(pid: int) -> int:
    return _field(_stat_fields(f"/proc/{pid}/stat"), 4)


def catches_signal(pid: int, sig: int) -> bool:
    """Does the process have a handler for sig (SigCgt in /proc/PID/status)?"""
    try:
        caught = int(_status(f"/proc/{pid}/status").get("SigCgt", ""), 16)
    except ValueError:
        return False
    return bool(caught >> (sig - 1) & 1)


def _kb(text: str) -> int:
    try:
        return int(text.split()[0])
    except (IndexError, ValueError):
        return 0


def _times(buf: bytearray, m: dict, fields: list[bytes]) -> None:
    """pr_start and pr_time (user + system CPU), alike in both structures."""
    _timestruc(buf, m["pr_start"][0], _field(fields, 22) * 1_000_000_000 // _CLK_TCK)
    cpu = (_field(fields, 14) + _field(fields, 15)) * 1_000_000_000 // _CLK_TCK
    _timestruc(buf, m["pr_time"][0], cpu)


def _timestruc(buf: bytearray, off: int, ns: int) -> None:
    struct.pack_into("<qq", buf, off, ns // 1_000_000_000, ns % 1_000_000_000)
