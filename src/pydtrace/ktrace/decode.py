"""Linux system-call decoding for printing ktrace records (kdump and any
later pretty printer): syscall names from the recorded ABI's table, argument
formatters per call, return values and errno text, signals, siginfo and the
structures of STRU records.

The spelling follows OpenBSD's kdump (shared/reference/ktrace-kdump.md §6):
pointers `%#lx`, descriptors and counts `%d`, flag sets `%#x<A|B>` (`0<>`
when none is set; bits without a name stay in hex inside the brackets),
enums by name or `<invalid=N>`. `fancy=False` (kdump -n) prints every
non-numeric argument as `%#lx`; `decimal=True` (kdump -d) prints plain
numbers in decimal instead of hex.
"""

from __future__ import annotations

import errno as _errno
import os
import re
import socket
import struct
from collections.abc import Callable
from functools import cache

from pydtrace.probes.syscalls import AUDIT_ARCH_AARCH64, AUDIT_ARCH_X86_64, UnknownArch, table

M64 = 0xFFFFFFFFFFFFFFFF
AT_FDCWD = -100
RESTART_CODES = frozenset((512, 513, 514, 516))  # ERESTARTSYS.. never seen by user space

ARCHES = {AUDIT_ARCH_X86_64: "x86_64", AUDIT_ARCH_AARCH64: "aarch64"}


def arch_name(audit_arch: str | int | None) -> str | None:
    """'x86_64'/'aarch64' for START's `arch` value (a hex string), None if unknown."""
    if audit_arch is None or audit_arch == "":
        return None
    try:
        n = int(audit_arch, 0) if isinstance(audit_arch, str) else audit_arch
    except ValueError:
        return None
    return ARCHES.get(n)


# --- small number formats (C's, not Python's) ---------------------------------------
def hx(v: int) -> str:
    """C's %#lx: "0" for zero, else 0x... of the unsigned 64-bit value."""
    v &= M64
    return "0" if v == 0 else f"{v:#x}"


def s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def s64(v: int) -> int:
    v &= M64
    return v - (1 << 64) if v >> 63 else v


def octal(v: int) -> str:
    """C's %#o."""
    return "0" if v == 0 else f"0{v:o}"


# --- signals --------------------------------------------------------------------------
SIGNALS = {
    1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT",
    7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2",
    13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM", 16: "SIGSTKFLT", 17: "SIGCHLD",
    18: "SIGCONT", 19: "SIGSTOP", 20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU", 23: "SIGURG",
    24: "SIGXCPU", 25: "SIGXFSZ", 26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO",
    30: "SIGPWR", 31: "SIGSYS",
}  # fmt: skip
SIGRTMIN, SIGRTMAX = 32, 64


def signame(n: int) -> str:
    """SIGINT; real-time signals as strace spells them (SIGRT_1 = 33); `SIG n` otherwise."""
    if n in SIGNALS:
        return SIGNALS[n]
    if SIGRTMIN <= n <= SIGRTMAX:
        return f"SIGRT_{n - SIGRTMIN}"
    return f"SIG {n}"


def sigset(mask: int) -> str:
    """OpenBSD's sigset(): `%#x<SIGA|SIGB>`, `0<>`, `~` + the complement when
    more than half of the 64 signals are set."""
    mask &= M64
    out = ""
    if bin(mask).count("1") > 32:
        out, mask = "~", ~mask & M64
    if mask == 0:
        return out + "0<>"
    names = [signame(i + 1) for i in range(64) if mask >> i & 1]
    return f"{out}{mask:#x}<{'|'.join(names)}>"


# --- errno ----------------------------------------------------------------------------
def errname(e: int) -> str:
    return _errno.errorcode.get(e, "RESTART" if e in RESTART_CODES else f"E{e}")


def strerror(e: int) -> str:
    try:
        return os.strerror(e)
    except ValueError:
        return f"Unknown error {e}"


# --- flag and enum tables -------------------------------------------------------------
Bits = tuple[tuple[int, int, str], ...]  # (mask, value, name): named when v & mask == value


def _bits(*pairs: tuple[int, str]) -> Bits:
    return tuple((v, v, n) for v, n in pairs)


def flagset(v: int, table: Bits, lead: str = "") -> str:
    """`%#x<A|B>`: every entry whose bits are all set; unnamed bits in hex."""
    v &= M64
    names, covered = [], 0
    for mask, val, name in table:
        if val and v & mask == val and val & ~covered:
            names.append(name)
            covered |= mask
    rest = v & ~covered
    if rest:
        names.append(f"{rest:#x}")
    return f"{hx(v)}<{lead}{'|'.join(names)}>"


def enum(v: int, names: dict[int, str]) -> str:
    return names.get(v, f"<invalid={v}>")


_O_COMMON = (
    (0o100, "O_CREAT"), (0o200, "O_EXCL"), (0o400, "O_NOCTTY"), (0o1000, "O_TRUNC"),
    (0o2000, "O_APPEND"), (0o4000, "O_NONBLOCK"), (0o1000000, "O_NOATIME"),
    (0o2000000, "O_CLOEXEC"), (0o10000000, "O_PATH"),
)  # fmt: skip
# bits that moved between architectures: DIRECT, LARGEFILE, DIRECTORY, NOFOLLOW
_O_ARCH = {
    "x86_64": ((0o40000, "O_DIRECT"), (0o100000, "O_LARGEFILE"), (0o200000, "O_DIRECTORY"),
               (0o400000, "O_NOFOLLOW")),
    "aarch64": ((0o200000, "O_DIRECT"), (0o400000, "O_LARGEFILE"), (0o40000, "O_DIRECTORY"),
                (0o100000, "O_NOFOLLOW")),
}  # fmt: skip
O_CREAT, O_DSYNC, O_SYNC_BIT, O_TMPFILE_BIT = 0o100, 0o10000, 0o4000000, 0o20000000


@cache
def open_bits(arch: str) -> Bits:
    by = dict((n, v) for v, n in _O_ARCH.get(arch, _O_ARCH["x86_64"]))
    tmp = O_TMPFILE_BIT | by["O_DIRECTORY"]
    multi = ((tmp, tmp, "O_TMPFILE"), (O_SYNC_BIT | O_DSYNC, O_SYNC_BIT | O_DSYNC, "O_SYNC"))
    return multi + _bits(*_O_COMMON, *_O_ARCH.get(arch, _O_ARCH["x86_64"]), (O_DSYNC, "O_DSYNC"))


def open_flags(v: int, arch: str) -> str:
    """The access mode always shows (O_RDONLY is 0)."""
    acc = {0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR"}.get(v & 3, "O_ACCMODE")
    body = flagset(v & ~3 & M64, open_bits(arch))
    rest = body[body.index("<") + 1 : -1]
    return f"{hx(v)}<{acc}{'|' + rest if rest else ''}>"


def opens_mode(flags: int, arch: str) -> bool:
    """open's mode argument means something only with O_CREAT or O_TMPFILE."""
    return bool(flags & O_CREAT) or flags & O_TMPFILE_BIT != 0


MODE_BITS = _bits(
    (0o4000, "S_ISUID"), (0o2000, "S_ISGID"), (0o1000, "S_ISVTX"),
    (0o400, "S_IRUSR"), (0o200, "S_IWUSR"), (0o100, "S_IXUSR"),
    (0o40, "S_IRGRP"), (0o20, "S_IWGRP"), (0o10, "S_IXGRP"),
    (0o4, "S_IROTH"), (0o2, "S_IWOTH"), (0o1, "S_IXOTH"),
)  # fmt: skip


def mode(v: int) -> str:
    v &= 0xFFFFFFFF
    names = [n for b, _, n in MODE_BITS if v & b]
    rest = v & ~0o7777
    if rest:
        names.append(f"{rest:#o}")
    return f"{octal(v)}<{'|'.join(names)}>"


PROT_BITS = _bits((1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC"), (8, "PROT_SEM"),
                  (0x01000000, "PROT_GROWSDOWN"), (0x02000000, "PROT_GROWSUP"))  # fmt: skip


def prot(v: int) -> str:
    return "0<PROT_NONE>" if v == 0 else flagset(v, PROT_BITS)


MAP_BITS = (
    (0xF, 3, "MAP_SHARED_VALIDATE"), (0xF, 1, "MAP_SHARED"), (0xF, 2, "MAP_PRIVATE"),
) + _bits(
    (0x10, "MAP_FIXED"), (0x20, "MAP_ANONYMOUS"), (0x40, "MAP_32BIT"), (0x100, "MAP_GROWSDOWN"),
    (0x800, "MAP_DENYWRITE"), (0x1000, "MAP_EXECUTABLE"), (0x2000, "MAP_LOCKED"),
    (0x4000, "MAP_NORESERVE"), (0x8000, "MAP_POPULATE"), (0x10000, "MAP_NONBLOCK"),
    (0x20000, "MAP_STACK"), (0x40000, "MAP_HUGETLB"), (0x80000, "MAP_SYNC"),
    (0x100000, "MAP_FIXED_NOREPLACE"), (0x4000000, "MAP_UNINITIALIZED"),
)  # fmt: skip

CLONE_BITS = _bits(
    (0x100, "CLONE_VM"), (0x200, "CLONE_FS"), (0x400, "CLONE_FILES"), (0x800, "CLONE_SIGHAND"),
    (0x1000, "CLONE_PIDFD"), (0x2000, "CLONE_PTRACE"), (0x4000, "CLONE_VFORK"),
    (0x8000, "CLONE_PARENT"), (0x10000, "CLONE_THREAD"), (0x20000, "CLONE_NEWNS"),
    (0x40000, "CLONE_SYSVSEM"), (0x80000, "CLONE_SETTLS"), (0x100000, "CLONE_PARENT_SETTID"),
    (0x200000, "CLONE_CHILD_CLEARTID"), (0x400000, "CLONE_DETACHED"),
    (0x800000, "CLONE_UNTRACED"), (0x1000000, "CLONE_CHILD_SETTID"),
    (0x2000000, "CLONE_NEWCGROUP"), (0x4000000, "CLONE_NEWUTS"), (0x8000000, "CLONE_NEWIPC"),
    (0x10000000, "CLONE_NEWUSER"), (0x20000000, "CLONE_NEWPID"), (0x40000000, "CLONE_NEWNET"),
    (0x80000000, "CLONE_IO"),
)  # fmt: skip


def clone_flags(v: int) -> str:
    """The low byte is the signal the parent gets when the child exits."""
    body = flagset(v & ~0xFF & M64, CLONE_BITS)
    names = [n for n in body[body.index("<") + 1 : -1].split("|") if n]
    if v & 0xFF:
        names.append(signame(v & 0xFF))
    return f"{hx(v)}<{'|'.join(names)}>"


FD_FLAG_BITS = _bits((0o4000, "O_NONBLOCK"), (0o2000000, "O_CLOEXEC"))
SOCK_FLAG_NAMES = {0o4000: "SOCK_NONBLOCK", 0o2000000: "SOCK_CLOEXEC"}
SOCK_FLAG_BITS = _bits(*((v, n) for v, n in SOCK_FLAG_NAMES.items()))
AT_BITS = _bits((0x100, "AT_SYMLINK_NOFOLLOW"), (0x200, "AT_REMOVEDIR"),
                (0x400, "AT_SYMLINK_FOLLOW"), (0x800, "AT_NO_AUTOMOUNT"),
                (0x1000, "AT_EMPTY_PATH"))  # fmt: skip
ACCESS_BITS = _bits((4, "R_OK"), (2, "W_OK"), (1, "X_OK"))
WAIT_BITS = _bits((1, "WNOHANG"), (2, "WUNTRACED"), (4, "WEXITED"), (8, "WCONTINUED"),
                  (0x01000000, "WNOWAIT"), (0x20000000, "__WNOTHREAD"), (0x40000000, "__WALL"),
                  (0x80000000, "__WCLONE"))  # fmt: skip
POLL_BITS = _bits((1, "POLLIN"), (2, "POLLPRI"), (4, "POLLOUT"), (8, "POLLERR"), (0x10, "POLLHUP"),
                  (0x20, "POLLNVAL"), (0x40, "POLLRDNORM"), (0x80, "POLLRDBAND"),
                  (0x100, "POLLWRNORM"), (0x200, "POLLWRBAND"), (0x2000, "POLLRDHUP"))  # fmt: skip
SA_BITS = _bits((1, "SA_NOCLDSTOP"), (2, "SA_NOCLDWAIT"), (4, "SA_SIGINFO"),
                (0x04000000, "SA_RESTORER"), (0x08000000, "SA_ONSTACK"),
                (0x10000000, "SA_RESTART"), (0x40000000, "SA_NODEFER"),
                (0x80000000, "SA_RESETHAND"))  # fmt: skip

AF_NAMES = {0: "AF_UNSPEC", 1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK",
            17: "AF_PACKET", 38: "AF_ALG", 40: "AF_VSOCK", 44: "AF_XDP"}  # fmt: skip
SOCK_TYPES = {1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW", 4: "SOCK_RDM",
              5: "SOCK_SEQPACKET", 6: "SOCK_DCCP", 10: "SOCK_PACKET"}  # fmt: skip
WHENCE = {0: "SEEK_SET", 1: "SEEK_CUR", 2: "SEEK_END", 3: "SEEK_DATA", 4: "SEEK_HOLE"}
SIG_HOW = {0: "SIG_BLOCK", 1: "SIG_UNBLOCK", 2: "SIG_SETMASK"}
FCNTL = {0: "F_DUPFD", 1: "F_GETFD", 2: "F_SETFD", 3: "F_GETFL", 4: "F_SETFL", 5: "F_GETLK",
         6: "F_SETLK", 7: "F_SETLKW", 8: "F_SETOWN", 9: "F_GETOWN", 10: "F_SETSIG",
         11: "F_GETSIG", 36: "F_OFD_GETLK", 37: "F_OFD_SETLK", 38: "F_OFD_SETLKW",
         1024: "F_SETLEASE", 1025: "F_GETLEASE", 1030: "F_DUPFD_CLOEXEC",
         1031: "F_SETPIPE_SZ", 1032: "F_GETPIPE_SZ", 1033: "F_ADD_SEALS",
         1034: "F_GET_SEALS"}  # fmt: skip
CLOCKS = {0: "CLOCK_REALTIME", 1: "CLOCK_MONOTONIC", 2: "CLOCK_PROCESS_CPUTIME_ID",
          3: "CLOCK_THREAD_CPUTIME_ID", 4: "CLOCK_MONOTONIC_RAW", 5: "CLOCK_REALTIME_COARSE",
          6: "CLOCK_MONOTONIC_COARSE", 7: "CLOCK_BOOTTIME", 8: "CLOCK_REALTIME_ALARM",
          9: "CLOCK_BOOTTIME_ALARM", 11: "CLOCK_TAI"}  # fmt: skip
RLIMITS = {0: "RLIMIT_CPU", 1: "RLIMIT_FSIZE", 2: "RLIMIT_DATA", 3: "RLIMIT_STACK",
           4: "RLIMIT_CORE", 5: "RLIMIT_RSS", 6: "RLIMIT_NPROC", 7: "RLIMIT_NOFILE",
           8: "RLIMIT_MEMLOCK", 9: "RLIMIT_AS", 10: "RLIMIT_LOCKS", 11: "RLIMIT_SIGPENDING",
           12: "RLIMIT_MSGQUEUE", 13: "RLIMIT_NICE", 14: "RLIMIT_RTPRIO",
           15: "RLIMIT_RTTIME"}  # fmt: skip


def socket_type(v: int) -> str:
    base = v & 0xF
    names = [SOCK_TYPES.get(base, f"<invalid={base}>")]
    names += [n for b, n in SOCK_FLAG_NAMES.items() if v & b]
    rest = v & ~0xF & ~sum(SOCK_FLAG_NAMES)
    if rest:
        names.append(f"{rest:#x}")
    return "|".join(names)


# --- per-call argument formatters -----------------------------------------------------
class Style:
    """How numbers print: fancy (decoded, off with kdump -n) and decimal (-d)."""

    def __init__(self, fancy: bool = True, decimal: bool = False, arch: str = "x86_64") -> None:
        self.fancy, self.decimal, self.arch = fancy, decimal, arch

    def num(self, v: int) -> str:
        """A plain number: %#lx, or %ld with -d."""
        return str(s64(v)) if self.decimal else hx(v)


Fmt = Callable[[int, Style], str]


def _fancy(f: Callable[[int, Style], str]) -> Fmt:
    """A decoder that falls back to %#lx (or %ld) under -n."""
    return lambda v, st: f(v, st) if st.fancy else st.num(v)


KINDS: dict[str, Fmt] = {
    "p": lambda v, st: hx(v),
    "x": lambda v, st: st.num(v),
    "d": lambda v, st: str(s32(v)),
    "D": lambda v, st: str(s64(v)),
    "u": lambda v, st: str(v & M64),
    "atfd": lambda v, st: "AT_FDCWD" if st.fancy and s32(v) == AT_FDCWD else str(s32(v)),
    "oflags": _fancy(lambda v, st: open_flags(v, st.arch)),
    "mode": _fancy(lambda v, st: mode(v)),
    "prot": _fancy(lambda v, st: prot(v)),
    "mapflags": _fancy(lambda v, st: flagset(v, MAP_BITS)),
    "clone": _fancy(lambda v, st: clone_flags(v)),
    "fdflags": _fancy(lambda v, st: flagset(v, FD_FLAG_BITS)),
    "sockflags": _fancy(lambda v, st: flagset(v, SOCK_FLAG_BITS)),
    "atflags": _fancy(lambda v, st: flagset(v, AT_BITS)),
    "access": _fancy(lambda v, st: "0<F_OK>" if v == 0 else flagset(v, ACCESS_BITS)),
    "wait": _fancy(lambda v, st: flagset(v, WAIT_BITS)),
    "sig": _fancy(lambda v, st: signame(s32(v)) if s32(v) else "0"),
    "how": _fancy(lambda v, st: enum(s32(v), SIG_HOW)),
    "whence": _fancy(lambda v, st: enum(s32(v), WHENCE)),
    "fcntl": _fancy(lambda v, st: enum(s32(v), FCNTL)),
    "clock": _fancy(lambda v, st: enum(s32(v), CLOCKS)),
    "rlimit": _fancy(lambda v, st: enum(s32(v), RLIMITS)),
    "domain": _fancy(lambda v, st: enum(s32(v), AF_NAMES)),
    "socktype": _fancy(lambda v, st: socket_type(v & 0xFFFFFFFF)),
}

# ABI name -> argument kinds (arguments beyond the list print as "x")
CALLS: dict[str, tuple[str, ...]] = {
    "read": ("d", "p", "x"), "write": ("d", "p", "x"),
    "pread64": ("d", "p", "x", "x"), "pwrite64": ("d", "p", "x", "x"),
    "readv": ("d", "p", "d"), "writev": ("d", "p", "d"),
    "preadv": ("d", "p", "d", "x"), "pwritev": ("d", "p", "d", "x"),
    "open": ("p", "oflags", "mode"), "openat": ("atfd", "p", "oflags", "mode"),
    "openat2": ("atfd", "p", "p", "x"), "creat": ("p", "mode"),
    "close": ("d",), "close_range": ("d", "d", "x"),
    "stat": ("p", "p"), "lstat": ("p", "p"), "fstat": ("d", "p"),
    "newfstatat": ("atfd", "p", "p", "atflags"), "fstatat64": ("atfd", "p", "p", "atflags"),
    "statx": ("atfd", "p", "atflags", "x", "p"),
    "poll": ("p", "u", "d"), "ppoll": ("p", "u", "p", "p", "u"),
    "lseek": ("d", "D", "whence"),
    "mmap": ("p", "x", "prot", "mapflags", "d", "x"), "mprotect": ("p", "x", "prot"),
    "munmap": ("p", "x"), "brk": ("p",), "mremap": ("p", "x", "x", "x", "p"),
    "rt_sigaction": ("sig", "p", "p", "u"), "rt_sigprocmask": ("how", "p", "p", "u"),
    "rt_sigreturn": (), "ioctl": ("d", "x", "x"),
    "access": ("p", "access"), "faccessat": ("atfd", "p", "access"),
    "faccessat2": ("atfd", "p", "access", "atflags"),
    "pipe": ("p",), "pipe2": ("p", "fdflags"),
    "dup": ("d",), "dup2": ("d", "d"), "dup3": ("d", "d", "fdflags"),
    "socket": ("domain", "socktype", "d"), "socketpair": ("domain", "socktype", "d", "p"),
    "connect": ("d", "p", "d"), "bind": ("d", "p", "d"), "listen": ("d", "d"),
    "accept": ("d", "p", "p"), "accept4": ("d", "p", "p", "sockflags"),
    "sendto": ("d", "p", "x", "x", "p", "d"), "recvfrom": ("d", "p", "x", "x", "p", "p"),
    "sendmsg": ("d", "p", "x"), "recvmsg": ("d", "p", "x"), "shutdown": ("d", "d"),
    "getsockname": ("d", "p", "p"), "getpeername": ("d", "p", "p"),
    "clone": ("clone", "p", "p", "p", "p"), "clone3": ("p", "u"),
    "execve": ("p", "p", "p"), "execveat": ("atfd", "p", "p", "p", "atflags"),
    "exit": ("d",), "exit_group": ("d",),
    "wait4": ("d", "p", "wait", "p"), "waitid": ("d", "d", "p", "wait", "p"),
    "kill": ("d", "sig"), "tkill": ("d", "sig"), "tgkill": ("d", "d", "sig"),
    "fcntl": ("d", "fcntl", "x"), "getdents64": ("d", "p", "x"),
    "chdir": ("p",), "fchdir": ("d",), "mkdir": ("p", "mode"),
    "mkdirat": ("atfd", "p", "mode"), "rmdir": ("p",), "unlink": ("p",),
    "unlinkat": ("atfd", "p", "atflags"), "rename": ("p", "p"),
    "renameat": ("atfd", "p", "atfd", "p"), "renameat2": ("atfd", "p", "atfd", "p", "x"),
    "link": ("p", "p"), "symlink": ("p", "p"), "readlink": ("p", "p", "x"),
    "readlinkat": ("atfd", "p", "p", "x"), "chmod": ("p", "mode"), "fchmod": ("d", "mode"),
    "fchmodat": ("atfd", "p", "mode"), "umask": ("mode",), "truncate": ("p", "D"),
    "ftruncate": ("d", "D"), "getcwd": ("p", "x"),
    "nanosleep": ("p", "p"), "clock_nanosleep": ("clock", "d", "p", "p"),
    "clock_gettime": ("clock", "p"), "clock_getres": ("clock", "p"),
    "set_tid_address": ("p",), "set_robust_list": ("p", "x"),
    "prlimit64": ("d", "rlimit", "p", "p"), "getrlimit": ("rlimit", "p"),
    "setrlimit": ("rlimit", "p"), "arch_prctl": ("x", "p"),
    "futex": ("p", "d", "x", "p", "p", "x"), "eventfd2": ("u", "fdflags"),
    "epoll_create1": ("fdflags",), "sendfile": ("d", "d", "p", "x"),
    "getrandom": ("p", "x", "x"), "sched_yield": (), "pause": (), "alarm": ("u",),
}  # fmt: skip

# return values that are ids, printed in decimal only
ID_RETURNS = frozenset(("getpid", "getppid", "gettid", "getuid", "geteuid", "getgid",
                        "getegid", "fork", "vfork", "clone", "clone3", "wait4", "waitid",
                        "getpgid", "getpgrp", "getsid", "setsid"))  # fmt: skip


def _generic(ctype: str, name: str) -> str:
    """A kind from the kernel prototype, for calls without an entry in CALLS."""
    if "*" in ctype:
        return "p"
    if name in ("dfd", "olddfd", "newdfd"):
        return "atfd"
    if name in ("fd", "oldfd", "newfd", "pid", "upid", "tgid", "sig") or ctype in ("int", "pid_t"):
        return "sig" if name == "sig" else "d"
    return "x"


class Decoder:
    """Names and formats system calls of one ABI (the START record's arch)."""

    def __init__(self, arch: str | None = None, fancy: bool = True, decimal: bool = False):
        self.table = None
        if arch is not None:
            try:
                self.table = table(arch)
            except UnknownArch:
                self.table = None
        self.style = Style(fancy, decimal, self.table.arch if self.table else "x86_64")
        self._kinds: dict[int, tuple[str, tuple[str, ...]]] = {}

    def name(self, code: int) -> str | None:
        """The ABI name (`stat`, not the kernel's `newstat`), None if unknown."""
        if self.table is None:
            return None
        s = self.table.by_nr.get(code)
        return s.abi if s else None

    def _call(self, code: int) -> tuple[str, tuple[str, ...]]:
        got = self._kinds.get(code)
        if got is None:
            s = self.table.by_nr.get(code) if self.table else None
            if s is None:
                got = (f"[{code}]", ())
            elif s.abi in CALLS:
                got = (s.abi, CALLS[s.abi])
            else:
                got = (s.abi, tuple(_generic(t, n) for t, n in s.args))
            self._kinds[code] = got
        return got

    def call(self, code: int, args: list[int]) -> str:
        """`name(arg,arg,...)`: the body of a CALL line."""
        name, kinds = self._call(code)
        st = self.style
        # the recorder stores six arguments: show the ones the call has
        shown = len(args) if name.startswith("[") else max(len(kinds), self._nargs(code))
        out = []
        for i, v in enumerate(args[:shown]):
            kind = kinds[i] if i < len(kinds) else "x"
            if kind == "mode" and name in ("open", "openat"):
                if not opens_mode(args[i - 1], st.arch):
                    if not st.fancy:
                        out.append(f"<unused>{octal(v & 0xFFFFFFFF)}")
                    break  # OpenBSD prints the mode only when O_CREAT gives it meaning
                out.append(KINDS["mode"](v, st) if st.fancy else octal(v & 0xFFFFFFFF))
                continue
            out.append(KINDS[kind](v, st))
        return f"{name}({','.join(out)})"

    def _nargs(self, code: int) -> int:
        s = self.table.by_nr.get(code) if self.table else None
        return s.nargs if s else 6

    def ret(self, code: int, error: int, retval: int) -> str:
        """`name value` or `name -1 errno N text`: the body of a RET line."""
        name = self._call(code)[0]
        return f"{name} {self.retval(name, error, retval)}"

    def retval(self, name: str, error: int, retval: int) -> str:
        st = self.style
        if error:
            if error in RESTART_CODES:
                return "RESTART"
            return f"-1 errno {error} {strerror(error)}" if st.fancy else f"-1 errno {error}"
        if not st.fancy:
            return str(retval) if st.decimal else f"{retval & M64:#x}"
        if name in ID_RETURNS:
            return str(retval)
        return f"{retval}/{hx(retval)}" if retval < 0 or retval > 9 else str(retval)

    # --- signals -------------------------------------------------------------------
    def psig(self, signo: int, code: int, handler: int, mask: int, siginfo: bytes) -> str:
        """`SIGINT SIG_DFL` / `SIGUSR1 caught handler=0x... mask=0<>` + siginfo fields."""
        out = signame(signo) + " "
        if handler == 0:
            out += "SIG_DFL"
        elif handler == 1:
            out += "SIG_IGN"
        else:
            out += f"caught handler={handler:#x} mask={sigset(mask)}"
        return out + siginfo_text(signo, code, siginfo, self.style.fancy)

    def struct(self, name: str, data: bytes) -> str:
        return struct_text(name, data, self.style)


# --- siginfo --------------------------------------------------------------------------
SI_CODES = {0x80: "SI_KERNEL", -1: "SI_QUEUE", -2: "SI_TIMER", -3: "SI_MESGQ", -4: "SI_ASYNCIO",
            -5: "SI_SIGIO", -6: "SI_TKILL", -7: "SI_DETHREAD", -60: "SI_ASYNCNL"}  # fmt: skip
_FAULT_CODES = {
    4: ("ILL_ILLOPC", "ILL_ILLOPN", "ILL_ILLADR", "ILL_ILLTRP", "ILL_PRVOPC", "ILL_PRVREG",
        "ILL_COPROC", "ILL_BADSTK", "ILL_BADIADDR"),
    8: ("FPE_INTDIV", "FPE_INTOVF", "FPE_FLTDIV", "FPE_FLTOVF", "FPE_FLTUND", "FPE_FLTRES",
        "FPE_FLTINV", "FPE_FLTSUB", "FPE_FLTUNK", "FPE_CONDTRAP"),
    11: ("SEGV_MAPERR", "SEGV_ACCERR", "SEGV_BNDERR", "SEGV_PKUERR", "SEGV_ACCADI",
         "SEGV_ADIDERR", "SEGV_ADIPERR", "SEGV_MTEAERR", "SEGV_MTESERR", "SEGV_CPERR"),
    7: ("BUS_ADRALN", "BUS_ADRERR", "BUS_OBJERR", "BUS_MCEERR_AR", "BUS_MCEERR_AO"),
    5: ("TRAP_BRKPT", "TRAP_TRACE", "TRAP_BRANCH", "TRAP_HWBKPT", "TRAP_UNK", "TRAP_PERF"),
    17: ("CLD_EXITED", "CLD_KILLED", "CLD_DUMPED", "CLD_TRAPPED", "CLD_STOPPED",
         "CLD_CONTINUED"),
    29: ("POLL_IN", "POLL_OUT", "POLL_MSG", "POLL_ERR", "POLL_PRI", "POLL_HUP"),
}  # fmt: skip


def code_name(signo: int, code: int) -> str:
    if code in SI_CODES:
        return SI_CODES[code]
    names = _FAULT_CODES.get(signo, ())
    if 1 <= code <= len(names):
        return names[code - 1]
    return f"<{code}>"


def siginfo_text(signo: int, code: int, si: bytes, fancy: bool = True) -> str:
    """` code=NAME` and the fields of the siginfo union that this code fills
    (x86_64/aarch64 layout: three ints and padding, the union at 16)."""
    if code == 0:
        return ""
    out = f" code={code_name(signo, code) if fancy else code}"
    si = si.ljust(128, b"\0")
    if signo in (4, 7, 8, 11) and code > 0:
        out += f" addr={struct.unpack_from('<Q', si, 16)[0]:#x}"
    elif signo == 17 and code > 0:
        pid, uid, status = struct.unpack_from("<iIi", si, 16)
        if code == 1:
            out += f" status={status}" + (f"/{status:#x}" if status > 9 else "")
        else:
            out += f" status={signame(status)}"
        out += f" pid={pid} uid={uid}"
    elif code in (-1, -6, 0x80) or code < 0:
        pid, uid = struct.unpack_from("<iI", si, 16)
        if code in (-1, -6):
            out += f" pid={pid} uid={uid}"
    return out


# --- structures (STRU) ----------------------------------------------------------------
def _time(sec: int, nsec: int, digits: int = 9) -> str:
    """Seconds, with the fraction only when there is one (OpenBSD's print_time)."""
    if nsec == (1 << 30) - 1:
        return "UTIME_NOW"
    if nsec == (1 << 30) - 2:
        return "UTIME_OMIT"
    return f"{sec}.{nsec:0{digits}d}" if nsec else str(sec)


def strmode(m: int) -> str:
    """BSD strmode(3): type letter, rwx triplets, then a space (no ACL marker)."""
    kind = {0o140000: "s", 0o120000: "l", 0o100000: "-", 0o60000: "b", 0o40000: "d",
            0o20000: "c", 0o10000: "p"}.get(m & 0o170000, "?")  # fmt: skip
    out = [kind]
    for shift, special, ch in ((6, 0o4000, "s"), (3, 0o2000, "s"), (0, 0o1000, "t")):
        bits = m >> shift & 7
        out.append("r" if bits & 4 else "-")
        out.append("w" if bits & 2 else "-")
        x = bits & 1
        if m & special:
            out.append(ch if x else ch.upper())
        else:
            out.append("x" if x else "-")
    return "".join(out) + " "


# (dev, ino, nlink, mode, uid, gid, rdev, size, blksize, blocks) offsets/formats per ABI
_STAT = {
    "x86_64": ("<QQQIII4xQqqq", 144),
    "aarch64": ("<QQIIIIQ8xqi4xq", 128),
}


def _stat(data: bytes, arch: str) -> str:
    fmt, size = _STAT.get(arch, _STAT["x86_64"])
    if len(data) < size:
        return "invalid record"
    v = struct.unpack_from(fmt, data)
    if arch == "aarch64":
        dev, ino, md, nlink, uid, gid, rdev, sz, blksize, blocks = v
    else:
        dev, ino, nlink, md, uid, gid, rdev, sz, blksize, blocks = v
    a, an, m, mn, c, cn = struct.unpack_from("<qqqqqq", data, 72)
    return (f"struct stat {{ dev={dev}, ino={ino}, mode={strmode(md)}, nlink={nlink}, "
            f"uid={uid}, gid={gid}, rdev={rdev}, atime={_time(a, an)}, mtime={_time(m, mn)}, "
            f"ctime={_time(c, cn)}, size={sz}, blocks={blocks}, blksize={blksize} }}")  # fmt: skip


def makedev(major: int, minor: int) -> int:
    """glibc's makedev for any two u32s (os.makedev refuses those past INT_MAX,
    which a statx record may hold)."""
    return (
        (major & 0xFFFFF000) << 32
        | (major & 0xFFF) << 8
        | (minor & 0xFFFFFF00) << 12
        | (minor & 0xFF)
    )


def _statx(data: bytes) -> str:
    """struct statx (what glibc's stat family uses on newer systems)."""
    if len(data) < 144:
        return "invalid record"
    mask, blksize, _attr, nlink, uid, gid, md, ino, size, blocks = struct.unpack_from(
        "<IIQIIIH2xQQQ", data
    )
    t = {name: struct.unpack_from("<qI", data, off) for name, off in
         (("atime", 64), ("btime", 80), ("ctime", 96), ("mtime", 112))}  # fmt: skip
    rmaj, rmin, dmaj, dmin = struct.unpack_from("<IIII", data, 128)
    times = ", ".join(f"{n}={_time(*t[n])}" for n in ("atime", "mtime", "ctime", "btime"))
    return (f"struct statx {{ mask={mask:#x}, dev={makedev(dmaj, dmin)}, ino={ino}, "
            f"mode={strmode(md)}, nlink={nlink}, uid={uid}, gid={gid}, "
            f"rdev={makedev(rmaj, rmin)}, {times}, size={size}, blocks={blocks}, "
            f"blksize={blksize} }}")  # fmt: skip


def sockaddr_text(data: bytes) -> str:
    if len(data) < 2:
        return "invalid"
    fam = struct.unpack_from("<H", data)[0]
    if fam == 2:
        if len(data) < 8:
            return "invalid"
        port = struct.unpack_from(">H", data, 2)[0]
        return f"AF_INET, {socket.inet_ntop(socket.AF_INET, data[4:8])}:{port}"
    if fam == 10:
        if len(data) < 24:
            return "invalid"
        port = struct.unpack_from(">H", data, 2)[0]
        return f"AF_INET6, [{socket.inet_ntop(socket.AF_INET6, data[8:24])}]:{port}"
    if fam == 1:
        path = data[2:]
        if path[:1] != b"\0":  # abstract names begin with a NUL and may hold more
            path = path.split(b"\0", 1)[0]
        return f'AF_UNIX, "{vis(path, VIS_NAMI)}"'
    return "unknown address family"


def struct_text(name: str, data: bytes, st: Style) -> str:
    """The body of a STRU line (OpenBSD's ktrstruct.c spellings)."""
    if name == "stat":
        return _stat(data, st.arch)
    if name == "statx":
        return _statx(data)
    if name == "sockaddr":
        return f"struct sockaddr {{ {sockaddr_text(data)} }}"
    if name in ("timespec", "abstimespec", "reltimespec"):
        if len(data) < 16:
            return "invalid record"
        sec, nsec = struct.unpack_from("<qq", data)
        return f"struct timespec {{ {_time(sec, nsec)} }}"
    if name in ("timeval", "abstimeval", "reltimeval"):
        if len(data) < 16:
            return "invalid record"
        sec, usec = struct.unpack_from("<qq", data)
        return f"struct timeval {{ {_time(sec, usec, 6)} }}"
    if name == "pollfd":
        if not data or len(data) % 8:
            return "invalid record"
        items = []
        for fd, ev, rev in struct.iter_unpack("<ihh", data):
            items.append(f"{{ fd={fd}, events={_poll(ev, st)}, revents={_poll(rev, st)} }}")
        return _array("pollfd", items)
    if name == "iovec":
        if not data or len(data) % 16:
            return "invalid record"
        items = [f"{{ base={hx(b)}, len={n} }}" for b, n in struct.iter_unpack("<QQ", data)]
        return _array("iovec", items)
    if name == "rlimit":
        if len(data) < 16:
            return "invalid record"
        cur, mx = (("infinite" if x == M64 else str(x)) for x in struct.unpack_from("<QQ", data))
        return f"struct rlimit {{ cur={cur}, max={mx} }}"
    if name == "rusage":
        if len(data) < 144:
            return "invalid record"
        us, uu, ss, su, *rest = struct.unpack_from("<qqqq14q", data)
        names = ("maxrss", "ixrss", "idrss", "isrss", "minflt", "majflt", "nswap", "inblock",
                 "oublock", "msgsnd", "msgrcv", "nsignals", "nvcsw", "nivcsw")  # fmt: skip
        fields = ", ".join(f"{n}={v}" for n, v in zip(names, rest))
        return (f"struct rusage {{ utime={_time(us, uu, 6)}, stime={_time(ss, su, 6)}, "
                f"{fields} }}")  # fmt: skip
    if name == "sigaction":
        if len(data) < 32:
            return "invalid record"
        handler, flags, _restorer, mask = struct.unpack_from("<QQQQ", data)
        if flags & 4:
            h = f"sigaction={hx(handler)}"
        else:
            h = "handler=" + {0: "SIG_DFL", 1: "SIG_IGN"}.get(handler, hx(handler))
        fl = flagset(flags, SA_BITS) if st.fancy else hx(flags)
        return f"struct sigaction {{ {h}, mask={sigset(mask)}, flags={fl} }}"
    return f"unknown structure {name}"


def _poll(v: int, st: Style) -> str:
    v &= 0xFFFF
    return flagset(v, POLL_BITS) if st.fancy else hx(v)


def _array(name: str, items: list[str]) -> str:
    if len(items) == 1:
        return f"struct {name} {items[0]}"
    return f"struct {name} [{len(items)}] {', '.join(items)}"


# --- vis(3) ---------------------------------------------------------------------------
VIS_CSTYLE, VIS_TAB, VIS_NL, VIS_DQ = 0x02, 0x08, 0x10, 0x200
VIS_NAMI = VIS_DQ | VIS_TAB | VIS_NL | VIS_CSTYLE  # paths, exec strings
_C_ESC = {0x0A: "\\n", 0x0D: "\\r", 0x08: "\\b", 0x07: "\\a", 0x0B: "\\v", 0x09: "\\t",
          0x0C: "\\f"}  # fmt: skip


def vis_char(c: int, nextc: int, flags: int) -> str:
    """OpenBSD vis(3) of one byte (no VIS_OCTAL): visible ASCII as itself,
    C escapes with VIS_CSTYLE, else \\^X / \\M-x meta notation."""
    if c == 0x5C:
        return "\\\\"
    if c == 0x22 and flags & VIS_DQ:
        return '\\"'
    if 0x20 <= c < 0x7F:
        return chr(c)
    if c == 0x09 and not flags & VIS_TAB:
        return "\t"
    if c == 0x0A and not flags & VIS_NL:
        return "\n"
    if flags & VIS_CSTYLE:
        if c in _C_ESC:
            return _C_ESC[c]
        if c == 0:
            return "\\000" if 0x30 <= nextc <= 0x37 else "\\0"
    out = "\\"
    if c & 0x80:
        c &= 0x7F
        out += "M"
    if c < 0x20 or c == 0x7F:
        return out + "^" + ("?" if c == 0x7F else chr(c + 0x40))
    if c == 0x20:  # a meta space, written in octal (vis does the same)
        return f"\\{c | 0x80:03o}"
    return out + "-" + chr(c)


@cache
def vis_table(flags: int) -> dict[int, str]:
    """vis_char of every byte for str.translate; with VIS_CSTYLE a NUL stays a
    NUL (its escape depends on the byte after it: see vis)."""
    table = {c: vis_char(c, 0, flags) for c in range(256)}
    if flags & VIS_CSTYLE:
        table[0] = "\0"
    return table


_NUL_BEFORE_OCTAL = re.compile("\0(?=[0-7])")


def vis(data: bytes, flags: int) -> str:
    """vis(3) of a byte string: a table lookup per byte, in C (data may be 16 MiB)."""
    text = data.decode("latin-1").translate(vis_table(flags))
    if flags & VIS_CSTYLE and "\0" in text:
        # a NUL before an octal digit is \000, else \0 (the digits translate to themselves)
        text = _NUL_BEFORE_OCTAL.sub(r"\\000", text).replace("\0", "\\0")
    return text


def exit_text(status: int) -> str:
    """An EXIT record's wait status: `status 0`, `killed SIGKILL` (+ ` (core dumped)`)."""
    sig = status & 0x7F
    if sig == 0:
        return f"status {status >> 8 & 0xFF}"
    if sig == 0x7F:
        return f"stopped {signame(status >> 8 & 0xFF)}"
    return f"killed {signame(sig)}" + (" (core dumped)" if status & 0x80 else "")


@cache
def decoder(arch: str | None, fancy: bool = True, decimal: bool = False) -> Decoder:
    return Decoder(arch, fancy, decimal)
