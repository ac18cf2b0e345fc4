"""The classic-BPF seccomp filter that makes only the traced syscalls stop.

The filter returns SECCOMP_RET_TRACE for the chosen syscall numbers (and for
anything from a foreign ABI, to be safe) and SECCOMP_RET_ALLOW otherwise, so
the tracer only hears about calls some probe wants.  It is installed by the
child between fork and exec, and is inherited by every descendant.

Calls that only fire entry probes may instead return SECCOMP_RET_USER_NOTIF:
the call waits for the tracer's answer on a listener descriptor, which needs
no ptrace stop and, with SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, hands the CPU
straight to the tracer and back (ptrace wakes the other task on another CPU
each way, which costs more than the tracing itself): see notify.py.
"""

from __future__ import annotations

import ctypes
import errno
import struct
from collections.abc import Callable, Iterable

LD_W_ABS = 0x20
JEQ_K = 0x15
JSET_K = 0x45
RET_K = 0x06
RET_TRACE = 0x7FF00000
RET_USER_NOTIF = 0x7FC00000
RET_ALLOW = 0x7FFF0000
MAX_INSNS = 4096

_OFF_NR = 0
_OFF_ARCH = 4
X32_BIT = 0x40000000  # x32 calls on x86_64 carry this bit in the number
AUDIT_ARCH_X86_64 = 0xC000003E

Insn = tuple[int, int, int, int]  # (code, jt, jf, k)


def build(numbers: Iterable[int] | None, audit_arch: int, notify: Iterable[int] = ()) -> list[Insn]:
    """The filter program: trace `numbers` (None: every call), allow everything
    else. With `notify`, those calls notify the listener instead of stopping
    (with numbers None: every other call does)."""
    notify = sorted(set(notify))
    prog: list[Insn] = []
    prog += [
        (LD_W_ABS, 0, 0, _OFF_ARCH),
        (JEQ_K, 1, 0, audit_arch),  # native ABI: go on to the number checks
        (RET_K, 0, 0, RET_TRACE),  # another ABI (i386 int 0x80): let the tracer see it
        (LD_W_ABS, 0, 0, _OFF_NR),
    ]
    if audit_arch == AUDIT_ARCH_X86_64:
        prog += [(JSET_K, 0, 1, X32_BIT), (RET_K, 0, 0, RET_TRACE)]
    # one compare-and-return pair per number keeps every jump short (jt/jf are u8)
    if numbers is None:
        for nr in notify:
            prog += [(JEQ_K, 0, 1, nr), (RET_K, 0, 0, RET_USER_NOTIF)]
        prog.append((RET_K, 0, 0, RET_TRACE))
        return prog
    for nr in notify:
        prog += [(JEQ_K, 0, 1, nr), (RET_K, 0, 0, RET_USER_NOTIF)]
    for nr in sorted(set(numbers) - set(notify)):
        prog += [(JEQ_K, 0, 1, nr), (RET_K, 0, 0, RET_TRACE)]
    prog.append((RET_K, 0, 0, RET_ALLOW))
    if len(prog) > MAX_INSNS:
        raise ValueError(f"seccomp filter too long ({len(prog)} instructions)")
    return prog


def encode(prog: list[Insn]) -> bytes:
    """struct sock_filter[]: u16 code, u8 jt, u8 jf, u32 k."""
    return b"".join(struct.pack("<HBBI", *insn) for insn in prog)


def run(prog: list[Insn], nr: int, arch: int) -> int:
    """Evaluate the filter on (nr, arch): what the kernel would decide (for tests)."""
    data = struct.pack("<iI", nr, arch)
    acc, pc = 0, 0
    while pc < len(prog):
        code, jt, jf, k = prog[pc]
        pc += 1
        if code == LD_W_ABS:
            acc = struct.unpack_from("<I", data, k)[0]
        elif code == JEQ_K:
            pc += jt if acc == k else jf
        elif code == JSET_K:
            pc += jt if acc & k else jf
        elif code == RET_K:
            return k
        else:
            raise ValueError(f"unknown opcode {code:#x}")
    raise ValueError("filter ran off its end")


class _Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install(code: bytes) -> None:
    """Install an encoded filter on the calling thread (the child, before exec)."""
    from pydtrace.engines.user.ptrace import syscalls as sc

    _load(code, lambda prog: sc.prctl(sc.PR_SET_SECCOMP, sc.SECCOMP_MODE_FILTER, prog))


def _load(code: bytes, call: Callable[[int], int]) -> int:
    """call(address of the struct sock_fprog of code), the filter installing
    call. Without CAP_SYS_ADMIN the kernel wants no_new_privs first; we only
    set it when asked to, so a root tracer keeps setuid semantics."""
    from pydtrace.engines.user.ptrace import syscalls as sc

    buf = ctypes.create_string_buffer(code, len(code))
    fprog = _Fprog(len(code) // 8, ctypes.addressof(buf))
    try:
        return call(ctypes.addressof(fprog))
    except OSError as e:
        if e.errno != errno.EACCES:
            raise
    sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
    return call(ctypes.addressof(fprog))


SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3
SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV = 1 << 5


def install_listener(code: bytes) -> int:
    """Install a filter with SECCOMP_RET_USER_NOTIF returns on the calling
    thread and return its listener descriptor (close-on-exec: it must be
    handed to the tracer before exec). OSError if the kernel refuses, e.g.
    EBUSY when the thread's filters already have a listener."""
    from pydtrace.engines.user.ptrace import syscalls as sc

    # Once the tracer has read a call, only a fatal signal may end its wait:
    # another would fail a call that cannot block (a write to /dev/null)
    # with EINTR where a handler lacks SA_RESTART, which it never does
    # untraced. Linux 5.19; an older kernel says EINVAL, and is refused (the
    # plain filter, with its stops, keeps the command's behaviour).
    flags = SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
    return _load(code, lambda prog: sc.seccomp(SECCOMP_SET_MODE_FILTER, flags, prog))
