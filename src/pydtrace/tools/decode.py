"""Numbers a person reads as names: errnos, signals, open(2) flags, and a
system call's arguments as strace and dtruss show them.

The values are the running machine's (Python's os, errno and signal modules
hold this platform's constants): the tools decode what this kernel returned.
"""

from __future__ import annotations

import errno as _errno
import os
from functools import cache

AT_FDCWD = -100


@cache
def _abi_names() -> dict[str, str]:
    try:
        from pydtrace.probes.syscalls import table

        return {c.name: c.abi for c in table().calls}
    except ValueError:  # no table for this machine
        return {}


def syscall_name(probefunc: str) -> str:
    """The name a call has in unistd.h and strace (stat), for its probe's (newstat)."""
    return _abi_names().get(probefunc, probefunc)


# The kernel's own codes, which a traced call may return before the kernel
# restarts it or turns them into EINTR (strace's names and texts)
_KERNEL_ERRNOS = {
    512: ("ERESTARTSYS", "To be restarted if SA_RESTART is set"),
    513: ("ERESTARTNOINTR", "To be restarted"),
    514: ("ERESTARTNOHAND", "To be restarted if no handler"),
    515: ("ENOIOCTLCMD", "No ioctl command"),
    516: ("ERESTART_RESTARTBLOCK", "Interrupted by signal"),
}


def errno_name(n: int) -> str:
    """ENOENT for 2; E<n> for a number the platform does not name."""
    if n in _KERNEL_ERRNOS:
        return _KERNEL_ERRNOS[n][0]
    return _errno.errorcode.get(n, f"E{n}")


def errno_text(n: int) -> str:
    """The C library's description (strerror), or strace's for the kernel's own codes."""
    if n in _KERNEL_ERRNOS:
        return _KERNEL_ERRNOS[n][1]
    return os.strerror(n)


def signal_name(n: int) -> str:
    """SIGTERM for 15, SIGRTMIN+3, SIG0 for the probe kill(pid, 0)."""
    import signal as _signal  # (here: signal imports enum, 4 ms of every tool's start)

    if n == 0:
        return "SIG0"
    try:
        return _signal.Signals(n).name
    except ValueError:
        pass
    rtmin, rtmax = _signal.SIGRTMIN, _signal.SIGRTMAX
    if rtmin <= n <= rtmax:
        return "SIGRTMIN" if n == rtmin else f"SIGRTMIN+{n - rtmin}"
    return f"SIG{n}"


def _bits(names: list[tuple[str, int]], value: int, empty: str) -> str:
    """NAME|NAME for the bits of value, the rest in hex; `empty` for none."""
    parts = []
    for name, bit in names:
        if bit and value & bit == bit:
            parts.append(name)
            value &= ~bit
    if value:
        parts.append(hex(value))
    return "|".join(parts) or empty


@cache
def _open_bits() -> list[tuple[str, int]]:
    names = ["O_CREAT", "O_EXCL", "O_NOCTTY", "O_TRUNC", "O_APPEND", "O_NONBLOCK",
             "O_SYNC", "O_DSYNC", "O_ASYNC", "O_DIRECT", "O_LARGEFILE", "O_DIRECTORY",
             "O_NOFOLLOW", "O_NOATIME", "O_CLOEXEC", "O_PATH", "O_TMPFILE"]  # fmt: skip
    found = [(n, getattr(os, n)) for n in names if getattr(os, n, 0)]
    # O_SYNC holds O_DSYNC's bit, O_TMPFILE O_DIRECTORY's: the wider name first
    found.sort(key=lambda x: -bin(x[1]).count("1"))
    # Python's os.O_LARGEFILE is 0 on 64-bit builds; the kernel's bit is still set
    # by 64-bit callers of open() through glibc on some architectures
    if not getattr(os, "O_LARGEFILE", 0):
        found.append(("O_LARGEFILE", 0o100000 if os.uname().machine == "x86_64" else 0))
    return found


def open_flags(flags: int) -> str:
    """O_RDONLY|O_CLOEXEC, as strace prints an open flag word."""
    flags &= 0xFFFFFFFF
    access = {0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR"}.get(flags & 3, "O_ACCMODE")
    rest = _bits(_open_bits(), flags & ~3, "")
    return f"{access}|{rest}" if rest else access


_PROT = [("PROT_READ", 1), ("PROT_WRITE", 2), ("PROT_EXEC", 4)]
_MAP = [("MAP_SHARED", 0x01), ("MAP_PRIVATE", 0x02), ("MAP_FIXED", 0x10),
        ("MAP_ANONYMOUS", 0x20), ("MAP_GROWSDOWN", 0x100), ("MAP_DENYWRITE", 0x800),
        ("MAP_EXECUTABLE", 0x1000), ("MAP_LOCKED", 0x2000), ("MAP_NORESERVE", 0x4000),
        ("MAP_POPULATE", 0x8000), ("MAP_NONBLOCK", 0x10000), ("MAP_STACK", 0x20000),
        ("MAP_HUGETLB", 0x40000), ("MAP_FIXED_NOREPLACE", 0x100000)]  # fmt: skip
_AT = [("AT_SYMLINK_NOFOLLOW", 0x100), ("AT_REMOVEDIR", 0x200), ("AT_SYMLINK_FOLLOW", 0x400),
       ("AT_NO_AUTOMOUNT", 0x800), ("AT_EMPTY_PATH", 0x1000)]  # fmt: skip
_ACCESS = [("R_OK", 4), ("W_OK", 2), ("X_OK", 1)]
_FDS = frozenset(("fd", "dfd", "olddfd", "newdfd", "fromfd", "dirfd", "oldfd", "newfd"))
_ADDRESSES = frozenset(("addr", "start", "brk", "new_addr", "old_addr"))
_SEEK = {0: "SEEK_SET", 1: "SEEK_CUR", 2: "SEEK_END", 3: "SEEK_DATA", 4: "SEEK_HOLE"}


def quote(s: str, limit: int | None = None) -> str:
    """A C string literal, as strace prints one (escapes for quotes and controls)."""
    out = []
    for ch in s if limit is None else s[:limit]:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif o < 0x20 or o == 0x7F:
            out.append("\\%o" % o)
        else:
            out.append(ch)
    tail = "..." if limit is not None and len(s) > limit else ""
    return '"' + "".join(out) + '"' + tail


def _signed(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def _int_of(ctype: str, v: int) -> int:
    """An argument register's value as the C type of the argument."""
    t = ctype.replace("const ", "").strip()
    if "*" in t:
        return v & 0xFFFFFFFFFFFFFFFF
    unsigned = t.startswith("unsigned") or t in ("size_t", "umode_t", "u32", "u64", "__u32", "__u64", "qid_t", "uid_t", "gid_t", "dev_t")  # fmt: skip
    wide = "long" in t or t in ("size_t", "ssize_t", "loff_t", "off_t", "u64", "__u64", "dev_t", "key_serial_t") or "64" in t  # fmt: skip
    bits = 64 if wide else 32
    return v & ((1 << bits) - 1) if unsigned else _signed(v, bits)


def argument(call: str, ctype: str, name: str, value: int, text: str | None = None) -> str:
    """One argument of a call as strace shows it: a string (text, read by the
    tool), a flag word, a descriptor, a pointer in hex, or a number."""
    if text is not None:
        return quote(text)
    if name in _FDS:  # a descriptor, whatever its declared width (mmap's is a long)
        v = _signed(value, 32)
        return "AT_FDCWD" if v == AT_FDCWD and name != "fd" else str(v)
    v = _int_of(ctype, value)
    if "*" in ctype or name in _ADDRESSES:
        return "NULL" if v == 0 else hex(v)
    if name == "mode" and call in ("access", "faccessat", "faccessat2"):
        return _bits(_ACCESS, v, "F_OK")
    if name == "flags" and call in ("open", "openat", "creat", "mq_open"):
        return open_flags(v)
    if name == "mode" or name.endswith("_mode") and "mode_t" in ctype:
        return "0%o" % v if v else "000"
    if name == "flag" and call in ("newfstatat", "fchownat", "linkat", "unlinkat", "utimensat"):
        return _bits(_AT, v, "0")
    if name == "flags" and call in ("statx", "faccessat2", "fchmodat2", "execveat"):
        return _bits(_AT, v, "0")
    if name == "prot" and call in ("mmap", "mprotect", "pkey_mprotect"):
        return _bits(_PROT, v, "PROT_NONE")
    if name == "flags" and call == "mmap":
        return _bits(_MAP, v, "0")
    if name == "whence" and call == "lseek":
        return _SEEK.get(v, str(v))
    if name == "sig" and call in ("kill", "tkill", "tgkill", "rt_sigaction", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_send_signal"):  # fmt: skip
        return signal_name(v)
    return str(v)


# calls whose return value is an address (strace prints it in hex)
_ADDRESS_RETURNS = frozenset(("mmap", "mremap", "brk", "shmat"))


def result(call: str, value: int, err: int) -> str:
    """`= 3`, `= 0x7f...`, `= -1 ENOENT (No such file or directory)`."""
    if err:
        return f"-1 {errno_name(err)} ({errno_text(err)})"
    if call in _ADDRESS_RETURNS:
        return hex(value & 0xFFFFFFFFFFFFFFFF)
    return str(_signed(value, 64))
