"""What the recorders must know about each system call, from the syscall
tables (probes/syscalls): which arguments are paths (NAMI records), which
calls move data through a buffer or an iovec array (GIO records), and which
start a new program (ARGS/ENV records). Both engines use these tables, so
they record the same things."""

from __future__ import annotations

import os
from functools import cache

from pydtrace.lang.dataclass import dataclass
from pydtrace.probes.syscalls import Syscall, table

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# argument names that hold a path in the kernel's prototypes
_PATH_NAMES = frozenset(
    ("filename", "pathname", "path", "oldname", "newname", "from_pathname", "to_pathname",
     "specialfile", "special", "dev_name", "dir_name", "new_root", "put_old", "library")
)  # fmt: skip


@dataclass(frozen=True)
class DataCall:
    """A call whose data becomes GIO records: `fd` argument index, where the
    data is (`buf` + `count` argument indices, or `iov` + `iovcnt` for an
    iovec array, or `msg` for a msghdr, or `mmsg` for an array of mmsghdr
    whose length the call returns), and its direction."""

    fd: int
    write: bool
    buf: int = -1
    count: int = -1
    iov: int = -1
    iovcnt: int = -1
    msg: int = -1
    mmsg: int = -1


# by ABI name; the data a read-side call moved is its return value's worth
DATA_CALLS = {
    "read": DataCall(0, False, buf=1, count=2),
    "write": DataCall(0, True, buf=1, count=2),
    "pread64": DataCall(0, False, buf=1, count=2),
    "pwrite64": DataCall(0, True, buf=1, count=2),
    "readv": DataCall(0, False, iov=1, iovcnt=2),
    "writev": DataCall(0, True, iov=1, iovcnt=2),
    "preadv": DataCall(0, False, iov=1, iovcnt=2),
    "pwritev": DataCall(0, True, iov=1, iovcnt=2),
    "preadv2": DataCall(0, False, iov=1, iovcnt=2),
    "pwritev2": DataCall(0, True, iov=1, iovcnt=2),
    "recvfrom": DataCall(0, False, buf=1, count=2),
    "sendto": DataCall(0, True, buf=1, count=2),
    "recvmsg": DataCall(0, False, msg=1),
    "sendmsg": DataCall(0, True, msg=1),
    # each message of the ones the call returns: its own GIO records, cut at
    # its msg_len and at the data limit
    "recvmmsg": DataCall(0, False, mmsg=1),
    "sendmmsg": DataCall(0, True, mmsg=1),
}
MMSGHDR_SIZE = 64  # struct mmsghdr (LP64): struct msghdr (56), unsigned msg_len, padding

EXEC_CALLS = {"execve": (0, 1, 2), "execveat": (1, 2, 3)}  # ABI name -> (path, argv, envp)

# USER records (trace point `u`): Linux has no utrace(2), so a traced program
# calls writev(-1, iov, 2) with iov[0] = the label (at most 20 bytes) and
# iov[1] = the data (at most USER_MAX bytes). Untraced, the call fails with
# EBADF and does nothing; traced, the recorder keeps it as a USER record.
USER_FD = -1
USER_MAX = 2048


def path_args(call: Syscall) -> tuple[int, ...]:
    """The indices of call's arguments that name a path."""
    return tuple(
        i for i, (ctype, name) in enumerate(call.args) if "char" in ctype and name in _PATH_NAMES
    )


@cache
def path_table(arch: str | None = None) -> dict[int, tuple[int, ...]]:
    """Syscall number -> its path argument indices (only calls that have one)."""
    out = {}
    for c in table(arch).calls:
        idx = path_args(c)
        if idx:
            out[c.nr] = idx
    return out


@cache
def data_table(arch: str | None = None) -> dict[int, DataCall]:
    """Syscall number -> how its data is found, for the calls that move data."""
    t = table(arch)
    return {t.by_name[name].nr: dc for name, dc in DATA_CALLS.items() if name in t.by_name}


@cache
def exec_table(arch: str | None = None) -> dict[int, tuple[int, int, int]]:
    t = table(arch)
    return {t.by_name[name].nr: idx for name, idx in EXEC_CALLS.items() if name in t.by_name}


# STRU records: call -> (when, struct name, pointer argument, size). The size
# is bytes, or ("arg", i) an argument, ("ptr", i) the u32 an argument points
# to (socklen_t *), or ("count", i, n) argument i elements of n bytes.
# "in" structures are read at entry (what the caller passes), "out" at a
# successful return (what the kernel filled in).
_STAT = 144 if os.uname().machine == "x86_64" else 128
STRUCT_CALLS: dict[str, tuple[str, str, int, Any]] = {
    "stat": ("out", "stat", 1, _STAT),
    "lstat": ("out", "stat", 1, _STAT),
    "fstat": ("out", "stat", 1, _STAT),
    "newfstatat": ("out", "stat", 2, _STAT),
    "statx": ("out", "statx", 4, 256),
    "connect": ("in", "sockaddr", 1, ("arg", 2)),
    "bind": ("in", "sockaddr", 1, ("arg", 2)),
    "accept": ("out", "sockaddr", 1, ("ptr", 2)),
    "accept4": ("out", "sockaddr", 1, ("ptr", 2)),
    "getsockname": ("out", "sockaddr", 1, ("ptr", 2)),
    "getpeername": ("out", "sockaddr", 1, ("ptr", 2)),
    "nanosleep": ("in", "timespec", 0, 16),
    "clock_nanosleep": ("in", "timespec", 2, 16),
    "poll": ("in", "pollfd", 0, ("count", 1, 8)),
    "getrlimit": ("out", "rlimit", 1, 16),
    "setrlimit": ("in", "rlimit", 1, 16),
    "getrusage": ("out", "rusage", 1, 144),
    "rt_sigaction": ("in", "sigaction", 1, 32),
}
