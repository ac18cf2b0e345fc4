"""ctypes bindings of the few system calls the ptrace source needs.

Every wrapper raises OSError with the C errno on failure, as os.* does.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
import threading

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.ptrace.restype = ctypes.c_long
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
_libc.prctl.restype = ctypes.c_int
_libc.prctl.argtypes = [
    ctypes.c_int,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
]
_libc.process_vm_readv.restype = ctypes.c_ssize_t
_libc.syscall.restype = ctypes.c_long
_libc.ioctl.restype = ctypes.c_int
_libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
# libc's ioctl without the errno check: for a hot loop that looks at -1 itself
raw_ioctl = _libc.ioctl
# ptrace for the calls every stop makes (GET_SYSCALL_INFO, the resume): a
# PyDLL keeps the GIL for the short call, and without argtypes nothing is
# converted through them: 0.6 us a call where _libc.ptrace takes 0.85
_hot_ptrace = ctypes.PyDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).ptrace
_hot_ptrace.restype = ctypes.c_long

# requests
PTRACE_CONT = 7
PTRACE_GETREGS = 12
PTRACE_KILL = 8
PTRACE_DETACH = 0x11
PTRACE_SYSCALL = 0x18
PTRACE_SETOPTIONS = 0x4200
PTRACE_GETEVENTMSG = 0x4201
PTRACE_GETSIGINFO = 0x4202
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_LISTEN = 0x4208
PTRACE_GET_SYSCALL_INFO = 0x420E

# options
O_TRACESYSGOOD = 0x1
O_TRACEFORK = 0x2
O_TRACEVFORK = 0x4
O_TRACECLONE = 0x8
O_TRACEEXEC = 0x10
O_TRACEEXIT = 0x40
O_TRACESECCOMP = 0x80
O_EXITKILL = 0x100000

# events (status >> 16)
EVENT_FORK = 1
EVENT_VFORK = 2
EVENT_CLONE = 3
EVENT_EXEC = 4
EVENT_EXIT = 6
EVENT_SECCOMP = 7
EVENT_STOP = 128

# PTRACE_GET_SYSCALL_INFO ops
OP_NONE = 0
OP_ENTRY = 1
OP_EXIT = 2
OP_SECCOMP = 3

PR_SET_SECCOMP = 22
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_MODE_FILTER = 2

WALL = 0x40000000
# wait only for this thread's children and tracees: sessions running side by
# side in threads of one process each have their own tracer thread
WNOTHREAD = 0x20000000


def _check(ret: int) -> int:
    if ret == -1:
        e = ctypes.get_errno()
        if e:
            raise OSError(e, os.strerror(e))
    return ret


def ptrace(request: int, tid: int, addr: int = 0, data: int = 0) -> int:
    ctypes.set_errno(0)
    return _check(_libc.ptrace(request, tid, addr, data))


def resume(request: int, tid: int, sig: int) -> None:
    """PTRACE_CONT/SYSCALL/DETACH, whose only -1 is an error: no errno reset
    before (the hot path of every stop)."""
    _check(_hot_ptrace(request, tid, None, sig))


def ptrace_seize(tid: int, options: int) -> None:
    ptrace(PTRACE_SEIZE, tid, 0, options)


def geteventmsg(tid: int) -> int:
    msg = ctypes.c_ulong(0)
    ptrace(PTRACE_GETEVENTMSG, tid, 0, ctypes.addressof(msg))
    return msg.value


def has_siginfo(tid: int) -> bool:
    """True if the stop is a signal-delivery stop (the kernel has a siginfo)."""
    buf = ctypes.create_string_buffer(128)
    try:
        ptrace(PTRACE_GETSIGINFO, tid, 0, ctypes.addressof(buf))
    except OSError:
        return False
    return True


class SyscallInfo:
    """What PTRACE_GET_SYSCALL_INFO says about a syscall stop."""

    __slots__ = ("op", "arch", "nr", "args", "rval", "is_error")

    def __init__(self, op: int, arch: int) -> None:
        self.op = op
        self.arch = arch
        self.nr = -1
        self.args: tuple[int, ...] = ()
        self.rval = 0
        self.is_error = 0


class _InfoBuffer(threading.local):
    """struct ptrace_syscall_info, one per thread: sessions traced from threads
    of one process (the Python API) each have a tracer thread."""

    def __init__(self) -> None:
        self.buf = ctypes.create_string_buffer(88)
        self.ptr = ctypes.c_void_p(ctypes.addressof(self.buf))


_INFO = _InfoBuffer()
_INFO_HEAD = struct.Struct("<B3xI")  # op, arch
_ENTRY = struct.Struct("<24xQQQQQQQ")  # (op, arch, pc, sp) nr, args
_EXIT = struct.Struct("<24xqB")  # rval, is_error


def get_syscall_info(tid: int) -> SyscallInfo:
    mine = _INFO
    buf = mine.buf
    _check(_hot_ptrace(PTRACE_GET_SYSCALL_INFO, tid, 88, mine.ptr))  # else a size
    info = SyscallInfo(*_INFO_HEAD.unpack_from(buf))
    op = info.op
    if op == OP_ENTRY or op == OP_SECCOMP:
        vals = _ENTRY.unpack_from(buf)
        info.nr, info.args = vals[0], vals[1:]
    elif op == OP_EXIT:
        info.rval, info.is_error = _EXIT.unpack_from(buf)
    return info


_REGS_BUF = ctypes.create_string_buffer(27 * 8)  # struct user_regs_struct (x86_64)


def get_regs(tid: int) -> tuple[int, ...]:
    """A stopped thread's user_regs_struct: pt_regs' 21 words, then fs_base,
    gs_base, ds, es, fs, gs."""
    ptrace(PTRACE_GETREGS, tid, 0, ctypes.addressof(_REGS_BUF))
    return struct.unpack("<27Q", _REGS_BUF.raw)


def prctl(option: int, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0) -> int:
    ctypes.set_errno(0)
    return _check(_libc.prctl(option, a2, a3, a4, a5))


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def process_vm_readv(pid: int, addr: int, size: int) -> bytes:
    """Up to size bytes at addr in pid; short when a page is unreadable."""
    buf = ctypes.create_string_buffer(size)
    local = _Iovec(ctypes.addressof(buf), size)
    remote = _Iovec(addr, size)
    ctypes.set_errno(0)
    n = _libc.process_vm_readv(
        ctypes.c_int(pid), ctypes.byref(local), ctypes.c_ulong(1), ctypes.byref(remote),
        ctypes.c_ulong(1), ctypes.c_ulong(0),
    )  # fmt: skip
    if n < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return buf.raw[:n]


# x86_64 numbers of the calls glibc may lack a wrapper for
SYS_READ = 0
SYS_WRITE = 1
SYS_SECCOMP = 317
SYS_PIDFD_OPEN = 434
SYS_PIDFD_GETFD = 438


def syscall(nr: int, *args: int) -> int:
    """A raw system call with up to six integer (or pointer) arguments."""
    ctypes.set_errno(0)
    return _check(_libc.syscall(ctypes.c_long(nr), *(ctypes.c_ulong(a) for a in args)))


def seccomp(op: int, flags: int, arg: int) -> int:
    return syscall(SYS_SECCOMP, op, flags, arg)


def pidfd_getfd(pid: int, fd: int) -> int:
    """A duplicate of descriptor fd of process pid (we must be allowed to
    ptrace it), close-on-exec."""
    pidfd = syscall(SYS_PIDFD_OPEN, pid, 0)
    try:
        return syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
    finally:
        os.close(pidfd)


def ioctl(fd: int, request: int, arg: int) -> int:
    """ioctl(2); arg is a pointer or a plain value, as the request wants."""
    ctypes.set_errno(0)
    return _check(_libc.ioctl(fd, request, arg))
