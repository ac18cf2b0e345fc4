"""The ptrace recorder: ktrace's engine for ordinary users.

Built on the D engine's tracer (engines/user/ptrace/tracer.py): the tracer
stops the tracees and calls a sink at each syscall entry and exit, new
thread/child, exec and exit; the Recorder below is that sink and turns the
stops into trace records. A command is started under a seccomp filter that
stops only the calls the chosen trace points need (none with `-t c` absent
and nothing else wanted); a running process (-p/-g) cannot be given a filter,
so it stops at every call and the recorder ignores what it does not want.

What ptrace cannot see: the CPU (records say -1), context switches (`w`),
calls made through the vDSO. PSIG's handler is the address the process gave
rt_sigaction while traced; a handler installed before tracing began is
recorded as 2 ("caught, address unknown"); 0 is SIG_DFL, 1 SIG_IGN.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal
import struct
import threading
import time
from collections.abc import Callable

from pydtrace.engines.user.ptrace import syscalls as sc
from pydtrace.engines.user.ptrace.tracer import Thread, TraceError, Tracer, read_memory
from pydtrace.ktrace import calls
from pydtrace.ktrace import format as F
from pydtrace.ktrace.calls import STRUCT_CALLS
from pydtrace.ktrace.recording import (
    RecordError,
    RecordOptions,
    check_targets,
    realtime_ns,
    start_record,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pydtrace.engines.signals import StopFlag

# the signals whose default action is to do nothing (sig_kernel_ignore)
_IGNORED_BY_DEFAULT = {signal.SIGCHLD, signal.SIGCONT, signal.SIGURG, signal.SIGWINCH}
HANDLER_UNKNOWN = 2  # PSIG handler of a signal caught by a handler set before tracing
CLONE_VM, CLONE_VFORK, CLONE_THREAD = 0x100, 0x4000, 0x10000
_MAX_STRINGS = 4096  # most argv/envp strings kept per exec
_MAX_STRING = 65536
_MAX_IOV = 1024
_MAX_MMSG = 1024  # messages of one recvmmsg/sendmmsg whose data is recorded
_FLUSH_EVERY = 0.2  # seconds: an idle recording still reaches the file soon

# header + payload of the records made at every stop, packed at once (format.HEADER, then
# syscall_payload of six arguments / sysret_payload): the cost of `-t c` is in these
_CALL = struct.Struct(F.HEADER.format + "ii6Q")
_RET = struct.Struct(F.HEADER.format + "iiq")
_RET_ERR = struct.Struct(F.HEADER.format + "ii")


_now, _REALTIME = time.clock_gettime_ns, time.CLOCK_REALTIME


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


class Recorder:
    """The tracer's sink: writes the records of the wanted trace points."""

    def __init__(self, opts: RecordOptions, writer: F.Writer, table: Any) -> None:
        self.opts, self.writer = opts, writer
        self.maxdata = max(0, opts.maxdata)
        w = opts.wants
        self.calls_on, self.nami, self.gio = w("c"), w("n"), w("i")
        self.psig_on, self.stru, self.user = w("s"), w("t"), w("u")
        self.args_on, self.env_on, self.forks = w("x"), w("X"), w("f")
        self.paths = calls.path_table() if self.nami else {}
        self.data = calls.data_table() if self.gio else {}
        self.execs = calls.exec_table() if (self.args_on or self.env_on) else {}
        by = table.by_name
        self.structs = (
            {by[n].nr: s for n, s in STRUCT_CALLS.items() if n in by} if self.stru else {}
        )
        self.writev = by["writev"].nr if "writev" in by else -1
        self.sigaction = by["rt_sigaction"].nr if "rt_sigaction" in by else -1
        self.clone_nr = by["clone"].nr if "clone" in by else -1
        self.clone3_nr = by["clone3"].nr if "clone3" in by else -1
        self.vfork_nr = by["vfork"].nr if "vfork" in by else -1
        self.exec_nrs = {by[n].nr for n in ("execve", "execveat") if n in by}
        self.pending = -1  # the -c command's tid until its exec succeeds
        self.all_numbers = set(table.by_nr)
        self.comms: dict[int, bytes] = {}  # tid -> comm (refreshed at exec)
        self.handlers: dict[int, dict[int, int]] = {}  # pid -> signal -> handler (rt_sigaction)
        self.skip: set[int] = set()  # pids traced but not recorded (children without -i)
        self.status: dict[int, int] = {}  # pid -> wait status, from its exit
        self.out = writer.write_raw
        self.buf, self.limit = writer.buf, writer.limit  # CALL/RET go straight in (whole records)
        # the calls that need more than CALL at entry / RET at exit
        self.entry_work = set(self.paths) | set(self.execs) | {self.writev, self.sigaction}
        self.entry_work |= {nr for nr, s in self.structs.items() if s[0] == "in"}
        self.exit_work = set(self.data) | {nr for nr, s in self.structs.items() if s[0] == "out"}

    # --- which calls stop ------------------------------------------------------------
    def stop_numbers(self) -> set[int] | None:
        """The calls the seccomp filter must stop (None: all of them)."""
        if self.calls_on:
            return None
        nrs = set(self.paths) | set(self.data) | set(self.execs) | set(self.structs)
        if self.user and self.writev >= 0:
            nrs.add(self.writev)
        if self.psig_on and self.sigaction >= 0:
            nrs.add(self.sigaction)
        if self.forks:
            nrs |= {n for n in (self.clone_nr, self.clone3_nr) if n >= 0}
        return nrs

    def exit_numbers(self) -> set[int] | None:
        """The calls whose return must be seen (None: all of them)."""
        if self.calls_on:
            return None
        nrs = set(self.data)
        nrs |= {nr for nr, s in self.structs.items() if s[0] == "out"}
        if self.forks:  # the fork event comes inside the call: its flags are in t.args then
            nrs |= {n for n in (self.clone_nr, self.clone3_nr) if n >= 0}
        return nrs

    # --- writing ----------------------------------------------------------------------
    def comm(self, t: Thread) -> bytes:
        c = self.comms.get(t.tid)
        if c is None:
            try:
                with open(f"/proc/{t.proc.pid}/task/{t.tid}/comm", "rb") as f:
                    c = f.read().rstrip(b"\n")[:15]
            except OSError:
                c = b""
            self.comms[t.tid] = c
        return c

    def emit(self, rtype: int, t: Thread, payload: bytes, ns: int) -> None:
        self.out(
            F.HEADER.pack(rtype, t.proc.pid, t.tid, -1, ns // 1_000_000_000, ns % 1_000_000_000,
                          self.comm(t), 0, len(payload)) + payload
        )  # fmt: skip

    # --- the sink interface ---------------------------------------------------------------
    def wants(self, kind: str) -> bool:
        return False  # the tracer's derived proc events (psinfo) are not needed

    def entry(self, t: Thread, nr: int, args: tuple[int, ...]) -> None:
        pid = t.proc.pid
        if pid in self.skip:
            return
        ns = _now(_REALTIME)
        if self.calls_on:
            comm = self.comms.get(t.tid) or self.comm(t)
            buf = self.buf
            buf += _CALL.pack(F.SYSCALL, pid, t.tid, -1, ns // 1_000_000_000, ns % 1_000_000_000,
                              comm, 0, 56, nr, 48, *args)  # fmt: skip
            if len(buf) > self.limit:
                self.writer.flush()
            if nr not in self.entry_work:
                return
        self.entry_extra(t, nr, args, ns)

    def entry_extra(self, t: Thread, nr: int, args: tuple[int, ...], ns: int) -> None:
        """The records of a call's entry other than CALL (NAMI, ARGS, ENV, STRU in, USER)."""
        idx = self.paths.get(nr)
        if idx:
            for i in idx:
                path = _string(t.tid, args[i])
                if path is not None:
                    self.emit(F.NAMEI, t, path, ns)
        ex = self.execs.get(nr)
        if ex is not None:
            if self.args_on:
                self.emit(F.EXECARGS, t, F.strings_payload(_strings(t.tid, args[ex[1]])), ns)
            if self.env_on:
                self.emit(F.EXECENV, t, F.strings_payload(_strings(t.tid, args[ex[2]])), ns)
        s = self.structs.get(nr)
        if s is not None and s[0] == "in":
            self._struct(t, s, args, ns)
        if nr == self.writev and self.user and _s32(args[0]) == calls.USER_FD and args[2] == 2:
            iov = _iovecs(t.tid, args[1], 2)
            if len(iov) == 2:
                label = read_memory(t.tid, iov[0][0], min(iov[0][1], F.USER_ID_SIZE))
                data = read_memory(t.tid, iov[1][0], min(iov[1][1], calls.USER_MAX))
                label = label.split(b"\0", 1)[0].decode("utf-8", "replace")
                self.emit(F.USER, t, F.user_payload(label, data), ns)
        if nr == self.sigaction and args[1] and self.psig_on:
            h = read_memory(t.tid, args[1], 8)
            if len(h) == 8:
                self.handlers.setdefault(t.proc.pid, {})[args[0] & 0xFFFFFFFF] = int.from_bytes(
                    h, "little"
                )

    def exit(self, t: Thread, nr: int, rval: int) -> None:
        pid = t.proc.pid
        if pid in self.skip:
            return
        ns = _now(_REALTIME)
        err = -rval if -4095 <= rval <= -1 else 0
        if nr in self.exit_work:
            self.exit_extra(t, nr, rval, ns)
        if self.calls_on:
            comm = self.comms.get(t.tid) or self.comm(t)
            sec, nsec = divmod(ns, 1_000_000_000)
            buf = self.buf
            if err:
                buf += _RET_ERR.pack(F.SYSRET, pid, t.tid, -1, sec, nsec, comm, 0, 8, nr, err)
            else:
                buf += _RET.pack(F.SYSRET, pid, t.tid, -1, sec, nsec, comm, 0, 16, nr, 0, rval)
            if len(buf) > self.limit:
                self.writer.flush()

    def command_exec(self, t: Thread, nr: int, args: tuple[int, ...]) -> None:
        """An exec of the -c command before it runs (each execvp attempt):
        recorded as OpenBSD records ktrace's own exec of the command, under
        the recorder's name (comm "ktrace" until the exec succeeds)."""
        ns = _now(_REALTIME)
        if self.calls_on:
            self.emit(F.SYSCALL, t, F.syscall_payload(nr, args), ns)
        self.entry_extra(t, nr, args, ns)

    def command_exec_failed(self, t: Thread, nr: int, rval: int) -> None:
        if self.calls_on:
            self.emit(F.SYSRET, t, F.sysret_payload(nr, -rval), _now(_REALTIME))

    def exit_extra(self, t: Thread, nr: int, rval: int, ns: int) -> None:
        """The records of a call's return other than RET (GIO, STRU out), made
        before RET as OpenBSD's are."""
        if -4095 <= rval <= -1:
            return
        s = self.structs.get(nr)
        if s is not None and s[0] == "out":
            self._struct(t, s, t.args, ns)
        dc = self.data.get(nr)
        if dc is None or rval <= 0 or not self.maxdata:
            return
        if dc.mmsg < 0:
            self._genio(t, dc, t.args, min(rval, self.maxdata), ns)
            return
        vec = read_memory(t.tid, t.args[dc.mmsg], calls.MMSGHDR_SIZE * min(rval, _MAX_MMSG))
        for off in range(0, len(vec) - calls.MMSGHDR_SIZE + 1, calls.MMSGHDR_SIZE):
            iov, cnt = struct.unpack_from("<QQ", vec, off + 16)
            (size,) = struct.unpack_from("<I", vec, off + 56)
            if size:
                self._genio(t, dc, t.args, min(size, self.maxdata), ns, (iov, cnt))

    def proc(self, kind: str, t: Thread, args: list[Any]) -> None:
        if kind == "exec-success":
            self.comms.pop(t.tid, None)
            caught = self.handlers.get(t.proc.pid)
            if caught:  # exec resets caught signals to SIG_DFL, keeps ignored ones
                self.handlers[t.proc.pid] = {s: h for s, h in caught.items() if h == 1}
        elif kind in ("exit", "lwp-exit") and t.tid == t.proc.pid:
            if t.proc.pid in self.status:  # the leader's lwp-exit, then the process's exit
                return
            try:
                st = sc.geteventmsg(t.tid) & 0xFFFFFFFF
            except OSError:
                return
            self.status[t.proc.pid] = st
            if self.forks and t.proc.pid not in self.skip:
                self.emit(F.EXIT, t, F.exit_payload(_s32(st)), realtime_ns())

    # --- events the tracer reports through Tracer hooks below --------------------------------
    def created(self, t: Thread, c: Thread) -> None:
        thread = c.proc.pid == t.proc.pid
        if not thread:
            if not self.opts.inherit or t.proc.pid in self.skip:
                self.skip.add(c.proc.pid)
                return
            if t.proc.pid in self.handlers:
                self.handlers[c.proc.pid] = dict(self.handlers[t.proc.pid])
        if self.calls_on and t.nr >= 0 and t.proc.pid not in self.skip:
            # The new task returns 0 from the parent's call; ptrace shows no
            # stop for that return (the kernel does, and the eBPF recorder).
            self.emit(F.SYSRET, c, F.sysret_payload(t.nr, 0, 0), realtime_ns())
        if t.proc.pid in self.skip or not self.forks:
            return
        flags = CLONE_THREAD | CLONE_VM if thread else signal.SIGCHLD
        if t.nr == self.clone_nr and t.args:
            flags = t.args[0]
        elif t.nr == self.clone3_nr and t.args:
            raw = read_memory(t.tid, t.args[0], 8)
            flags = int.from_bytes(raw, "little") if len(raw) == 8 else flags
        elif t.nr == self.vfork_nr:
            flags = CLONE_VM | CLONE_VFORK | signal.SIGCHLD
        self.emit(F.FORK, t, F.fork_payload(c.proc.pid, c.tid, flags), realtime_ns())

    def signal(self, t: Thread, sig: int, info: bytes) -> None:
        if t.proc.pid in self.skip:
            return
        ns = realtime_ns()
        blocked, caught, ignored = _sigmasks(t.proc.pid, t.tid)
        bit = 1 << (sig - 1)
        if not caught & bit and (ignored & bit or sig in _IGNORED_BY_DEFAULT):
            # Only a traced task gets an ignored signal (so that its tracer
            # sees it); the kernel discards it for any other task at once,
            # and it is never delivered: no PSIG, as without ktrace.
            return
        if caught & bit:
            handler = self.handlers.get(t.proc.pid, {}).get(sig, HANDLER_UNKNOWN)
            if handler in (0, 1):
                handler = HANDLER_UNKNOWN
        else:
            handler = 1 if ignored & bit else 0
        code = struct.unpack_from("<i", info, 8)[0]
        self.emit(F.PSIG, t, F.psig_payload(sig, code, handler, blocked, info), ns)

    # --- payload helpers -----------------------------------------------------------------
    def _struct(
        self, t: Thread, s: tuple[str, str, int, Any], args: tuple[int, ...], ns: int
    ) -> None:
        _, name, ptr, size = s
        addr = args[ptr] if ptr < len(args) else 0
        if not addr:
            return
        if isinstance(size, tuple):
            if size[0] == "arg":
                size = args[size[1]] & 0xFFFFFFFF
            elif size[0] == "ptr":
                raw = read_memory(t.tid, args[size[1]], 4) if args[size[1]] else b""
                size = int.from_bytes(raw, "little") if len(raw) == 4 else 0
            else:
                size = min(args[size[1]] & 0xFFFFFFFF, 1024) * size[2]
            size = min(size, 4096)
        data = read_memory(t.tid, addr, size) if size else b""
        if data:
            self.emit(F.STRUCT, t, F.struct_payload(name, data), ns)

    def _genio(self, t: Thread, dc: calls.DataCall, args: tuple[int, ...], n: int, ns: int,
               vector: tuple[int, int] | None = None) -> None:  # fmt: skip
        """GIO records of the first n bytes a call moved; `vector` is the
        (iovec array, count) of one message of recvmmsg/sendmmsg."""
        fd = _s32(args[dc.fd])
        if dc.buf >= 0:
            runs = [(args[dc.buf], n)]
        else:
            if vector is not None:
                iov, cnt = vector
            elif dc.msg >= 0:  # struct msghdr: msg_iov at 16, msg_iovlen at 24 (LP64)
                raw = read_memory(t.tid, args[dc.msg], 32)
                if len(raw) < 32:
                    return
                iov, cnt = struct.unpack_from("<QQ", raw, 16)
            else:
                iov, cnt = args[dc.iov], args[dc.iovcnt] & 0xFFFFFFFF
            runs = []
            for base, length in _iovecs(t.tid, iov, min(cnt, _MAX_IOV)):
                if n <= 0:
                    break
                take = min(length, n)
                if take:
                    runs.append((base, take))
                n -= take
        for base, size in runs:
            data = read_memory(t.tid, base, size)
            for off in range(0, len(data), F.GIO_CHUNK):
                chunk = data[off : off + F.GIO_CHUNK]
                self.emit(F.GENIO, t, F.genio_payload(fd, dc.write, chunk), ns)


def _string(tid: int, addr: int) -> bytes | None:
    from pydtrace.engines.user.ptrace.tracer import read_string

    return read_string(tid, addr, 4096) if addr else None


def _strings(tid: int, addr: int) -> list[bytes]:
    """A NULL-terminated array of string pointers (argv, envp)."""
    out: list[bytes] = []
    total = 0
    while addr and len(out) < _MAX_STRINGS:
        raw = read_memory(tid, addr, 8 * 64)
        ptrs = struct.unpack_from(f"<{len(raw) // 8}Q", raw)
        if not ptrs:
            break
        for p in ptrs:
            if not p or len(out) >= _MAX_STRINGS:
                return out
            s = _string(tid, p) or b""
            total += len(s)
            out.append(s)
            if total > _MAX_STRING * 16:
                return out
        addr += 8 * len(ptrs)
    return out


def _iovecs(tid: int, addr: int, count: int) -> list[tuple[int, int]]:
    raw = read_memory(tid, addr, 16 * count) if addr and count else b""
    n = len(raw) // 16
    vals = struct.unpack_from(f"<{2 * n}Q", raw)
    return [(vals[2 * i], vals[2 * i + 1]) for i in range(n)]


def _sigmasks(pid: int, tid: int) -> tuple[int, int, int]:
    """(blocked, caught, ignored) from /proc: SigBlk is the thread's, SigCgt/SigIgn the process's."""
    vals = {"SigBlk": 0, "SigCgt": 0, "SigIgn": 0}
    try:
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            for line in f:
                key, _, v = line.partition(":")
                if key in vals:
                    vals[key] = int(v, 16)
    except (OSError, ValueError):
        pass
    return vals["SigBlk"], vals["SigCgt"], vals["SigIgn"]


_SIGINFO = ctypes.create_string_buffer(F.SIGINFO_SIZE)


def _siginfo(tid: int) -> bytes | None:
    """The pending siginfo of a signal-delivery stop; None for any other stop."""
    try:
        sc.ptrace(sc.PTRACE_GETSIGINFO, tid, 0, ctypes.addressof(_SIGINFO))
    except OSError:
        return None
    return _SIGINFO.raw


_SYSCALL_STOP = (signal.SIGTRAP | 0x80) << 8 | 0x7F  # the wait status of a syscall stop
# ptrace(2) for the loop's two calls per stop, as cheap as ctypes makes it: no
# argtypes (every integer passed is small and non-negative, the buffer goes as a
# pointer), no errno saving (only the sign of the result is looked at), and the
# GIL kept (PyDLL: these requests never block)
_ptrace = ctypes.PyDLL(None).ptrace
_ptrace.restype = ctypes.c_long
_ENTRY = struct.Struct("<B3xI16xQ6Q")  # op, arch, (pc, sp), nr, args
_EXIT = struct.Struct("<B3xI16xq")  # op, arch, (pc, sp), rval


class _Tracer(Tracer):
    """The D engine's tracer with two more reports for the recorder: every
    signal-delivery stop (the D engine only wants caught ones) and every new
    child or thread (with the parent thread, for the FORK record); and a short
    path for the syscall stops of an unfiltered thread (-p, or -t c), which
    are nearly every stop and what the recording's speed depends on."""

    rec: Recorder

    def __init__(self, sink: Any = None) -> None:
        super().__init__(sink)
        # struct ptrace_syscall_info, the tracer's own: recordings may run in
        # threads of one process, each with its tracer
        self.info = ctypes.create_string_buffer(88)
        self.info_addr = ctypes.c_void_p(ctypes.addressof(self.info))
        self.info_op = ctypes.c_uint8.from_buffer(self.info)

    def on_syscall_stop(self, t: Thread) -> None:
        if t.filtered or not self._fast_syscall(t):
            super().on_syscall_stop(t)

    def handle(self, tid: int, status: int, hold_exec: int = -1) -> None:
        if os.WIFSTOPPED(status) and not status >> 16 and self.rec.psig_on:
            sig = os.WSTOPSIG(status)
            t = self.threads.get(tid)
            if sig != signal.SIGTRAP | 0x80 and t is not None and t.started:
                info = _siginfo(tid)
                if info is not None:
                    self.rec.signal(t, sig, info)
        super().handle(tid, status, hold_exec)

    def _fast_syscall(self, t: Thread) -> bool:
        """Tracer.on_syscall_stop for an unfiltered thread with the ptrace calls
        made directly; False (nothing done) if the kernel will not say."""
        info = self.info
        if _ptrace(sc.PTRACE_GET_SYSCALL_INFO, t.tid, 88, self.info_addr) < 0:
            return False
        op = self.info_op.value
        if op == sc.OP_ENTRY:
            vals = _ENTRY.unpack_from(info)
            t.nr, t.args = vals[2], vals[3:]
            if t.started:
                self.rec.entry(t, t.nr, t.args)
            elif t.tid == self.rec.pending and t.nr in self.rec.exec_nrs:
                self.rec.command_exec(t, t.nr, t.args)
        elif op == sc.OP_EXIT:
            nr, t.nr = t.nr, -1
            if nr >= 0 and t.started:
                self.rec.exit(t, nr, _EXIT.unpack_from(info)[2])
            elif t.tid == self.rec.pending and nr in self.rec.exec_nrs:
                self.rec.command_exec_failed(t, nr, _EXIT.unpack_from(info)[2])
        else:
            return False
        t.held = None
        t.listening = False
        _ptrace(sc.PTRACE_SYSCALL, t.tid, 0, 0)  # ESRCH: it died, its exit status will come
        return True

    def on_seccomp_stop(self, t: Thread) -> None:
        if not t.started and t.tid == self.rec.pending:  # the command's exec, filtered
            try:
                info = sc.get_syscall_info(t.tid)
            except OSError:
                info = None
            if info is not None and info.nr in self.rec.exec_nrs:
                self.rec.command_exec(t, info.nr, info.args)
        super().on_seccomp_stop(t)

    def on_created(self, t: Thread, c: Thread) -> None:
        self.rec.created(t, c)

    def on_gone(self, tid: int, status: int) -> None:
        self.rec.status.setdefault(tid, status)
        super().on_gone(tid, status)


class _WakeUp(Exception):
    """Raised by a signal handler to end a blocking wait for tracee events."""


def _targets(opts: RecordOptions) -> list[int]:
    """The pids -p/-g name, with their current descendants under -d."""
    pids = list(opts.pids)
    if opts.pgid is not None:
        pids = [p for p in _all_pids() if _stat(p, 5) == opts.pgid]
        if not pids:
            raise RecordError(f"pgid {opts.pgid}: No such process")
    check_targets(pids)
    if opts.descend:
        parents = {p: _stat(p, 4) for p in _all_pids()}
        todo = list(pids)
        while todo:
            cur = todo.pop()
            for child, ppid in parents.items():
                if ppid == cur and child not in pids and child != os.getpid():
                    pids.append(child)
                    todo.append(child)
    return pids


def _all_pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def _stat(pid: int, field: int) -> int:
    """Field `field` (1-based, as proc(5) numbers them) of /proc/PID/stat; -1 if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[field - 3])
    except (OSError, IndexError, ValueError):
        return -1


def record(
    opts: RecordOptions,
    writer: F.Writer,
    stop: StopFlag,
    ready: Callable[[], None] | None = None,
) -> int:
    """Record with ptrace until the targets exit or `stop` is set (recording.py)."""
    from pydtrace.engines.user.ptrace.seccomp import build, encode
    from pydtrace.probes.syscalls import table as syscall_table

    if "w" in opts.points:
        raise RecordError(
            "the ptrace engine cannot record context switches (-t w); use --engine ebpf"
        )
    table = syscall_table()
    rec = Recorder(opts, writer, table)
    tracer = _Tracer(rec)
    tracer.rec = rec
    pids = [] if opts.command else _targets(opts)
    writer.write(start_record(opts))
    main = threading.current_thread() is threading.main_thread()
    old: dict[int, Any] = {}
    if main:

        def on_signal(signum: int, frame: Any) -> None:
            if signum == signal.SIGINT and opts.command:
                return  # ^C is the command's to handle; we record what it does
            stop.set()
            if tracer.in_wait:
                raise _WakeUp

        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            old[s] = signal.signal(s, on_signal)

    def on_write_error() -> None:
        """A file that cannot be written ends the recording, as SIGTERM does."""
        stop.set()
        if tracer.in_wait:  # the flush of the interval timer, in a wait
            raise _WakeUp

    writer.on_error = on_write_error
    try:
        if opts.command:
            _start_command(opts, tracer, rec, table, build, encode)
            target = tracer.targets[0].pid
        else:
            target = -1
            for p in pids:
                try:
                    tracer.grab(p)
                except TraceError as e:
                    tracer.detach_all()
                    msg = str(e).split("\n", 1)[0].replace("failed to grab ", "")
                    raise RecordError(msg) from None
        if ready is not None:
            ready()
        _loop(tracer, writer, stop, main)
        if target > 0:
            st = rec.status.get(target, 0)
            return os.WEXITSTATUS(st) if os.WIFEXITED(st) else 128 + os.WTERMSIG(st)
        return 0
    finally:
        tracer.finish()  # never leave a tracee stopped; a created command ends with us
        writer.flush()
        for s, h in old.items():
            signal.signal(s, h)


def _start_command(opts: RecordOptions, tracer: _Tracer, rec: Recorder, table: Any,
                   build: Any, encode: Any) -> None:  # fmt: skip
    argv = list(opts.command or [])
    saved = os.environ.get("LD_BIND_NOW")
    if opts.bind_now:
        os.environ["LD_BIND_NOW"] = "1"
    try:
        pid = tracer.spawn(argv)
    finally:
        if opts.bind_now:
            if saved is None:
                os.environ.pop("LD_BIND_NOW", None)
            else:
                os.environ["LD_BIND_NOW"] = saved
    numbers = rec.stop_numbers()
    tracer.exit_numbers = rec.exit_numbers()
    code = b""
    if numbers is not None:
        code = encode(build(numbers, table.audit_arch))
    # The command's own exec attempts are recorded (Recorder.command_exec)
    # under the recorder's name, as OpenBSD's, where ktrace itself execs it.
    rec.comms[pid] = b"ktrace"
    rec.pending = pid
    try:
        tracer.release(tracer.targets[0], code)
    except TraceError as e:
        msg = str(e)
        why = msg.split(": ", 1)[1] if ": " in msg else msg
        tracer.finish()
        raise RecordError(f"exec of '{argv[0]}' failed: {why}") from None
    rec.pending = -1
    rec.comms.clear()  # recorded before the exec under the recorder's name


def _loop(tracer: _Tracer, writer: F.Writer, stop: StopFlag, main: bool) -> None:
    """Handle stops until the targets are gone or `stop` is set. The wait is
    Tracer.step's, inlined with the syscall stops of an unfiltered thread
    (-p, or -t c: nearly every stop) handled right here: this loop runs twice
    per traced call, and with `-t c` alone its Python time is what ktrace
    costs over strace, so it keeps to local names, one ptrace call to read
    the stop and one to resume, and packs CALL/RET straight into the buffer.

    Records reach the file when the buffer fills, and at least every
    _FLUSH_EVERY seconds: in the main thread an interval timer breaks a
    blocking wait to flush (no clock read per stop); elsewhere (no signals)
    the loop polls."""
    tracer.resume_held()
    rec = tracer.rec
    threads, waitpid, wall = tracer.threads, os.waitpid, sc.WALL
    info, info_addr = tracer.info, tracer.info_addr
    ptrace, op_of = _ptrace, memoryview(info).cast("B")
    get_info, resume = sc.PTRACE_GET_SYSCALL_INFO, sc.PTRACE_SYSCALL
    op_entry, op_exit = sc.OP_ENTRY, sc.OP_EXIT
    entry_of, exit_of = _ENTRY.unpack_from, _EXIT.unpack_from
    call_pack, ret_pack, err_pack = _CALL.pack, _RET.pack, _RET_ERR.pack
    calls_on, skip, comms, comm_of = rec.calls_on, rec.skip, rec.comms, rec.comm
    entry_work, exit_work = rec.entry_work, rec.exit_work
    buf, limit, flush = writer.buf, writer.limit, writer.flush
    now, realtime, sysc, sysret = _now, _REALTIME, F.SYSCALL, F.SYSRET
    old_alarm: Any = None
    if main:

        def on_alarm(signum: int, frame: Any) -> None:
            # Runs between bytecodes. In a wait (a tracee busy or blocked)
            # nothing touches the buffer, so it is written here and the wait
            # goes on (PEP 475); raising would lose a status waitpid returned.
            if tracer.in_wait and buf:
                flush()  # a failure raises _WakeUp (record's on_write_error)
            if tracer.in_wait and stop.is_set():  # set outside a wait (a failed write)
                raise _WakeUp

        old_alarm = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, _FLUSH_EVERY, _FLUSH_EVERY)
    n = 0
    # With a CPU to spare, ask a few times without sleeping before blocking
    # (Tracer.spin): a tracee's next stop mostly comes within microseconds,
    # and catching it awake saves the sleep and the wake-up (dd bs=1 under
    # -t c: 3.2 s -> 2.1 s).
    spin = tracer.spin
    nohang = wall | os.WNOHANG
    waitid, all_, trapped = os.waitid, os.P_ALL, os.CLD_TRAPPED
    peek = wall | os.WEXITED | os.WNOWAIT
    peek_nohang = peek | os.WNOHANG
    try:
        while tracer.live:
            try:
                n += 1
                if not main or not n & 63:
                    if stop.is_set():
                        break
                    if not main:  # no signal can wake a blocking wait: poll
                        if not tracer.step(block=False):
                            flush()
                            stop.wait(0.01)
                        continue
                # As Tracer.step: a stop is looked at, not taken (taken, a
                # signal-delivery stop's signal is lost if we are killed
                # before the resume); a stop asked for just before the
                # blocking wait is seen, and the wait the handler breaks
                # loses nothing.
                try:
                    got = None
                    for _ in range(spin + 1):
                        got = waitid(all_, 0, peek_nohang)
                        if got is not None:
                            break
                    if got is None:
                        tracer.in_wait = True
                        if stop.is_set():
                            break
                        got = waitid(all_, 0, peek)
                        tracer.in_wait = False
                    tid = got.si_pid
                    if got.si_code == trapped:
                        status = got.si_status << 8 | 0x7F
                    else:  # exited: reaped
                        tid, status = waitpid(tid, nohang)
                        if not tid:
                            continue
                except ChildProcessError:
                    tracer.live.clear()
                    break
                finally:
                    tracer.in_wait = False
                if status == _SYSCALL_STOP:
                    t = threads.get(tid)
                    if (
                        t is not None
                        and not t.filtered
                        and ptrace(get_info, tid, 88, info_addr) >= 0
                    ):
                        op = op_of[0]
                        t.held = None
                        t.listening = False
                        # The tracee is resumed as soon as what must be read
                        # while it is stopped has been read: CALL and RET are
                        # packed while it runs (on another CPU, in parallel).
                        if op == op_entry:
                            v = entry_of(info)
                            t.nr = nr = v[2]
                            t.args = args = v[3:]
                            if not t.started or t.proc.pid in skip:
                                ptrace(resume, tid, 0, 0)
                                continue
                            ns = now(realtime)
                            if nr in entry_work:  # its CALL first, then what it names
                                if calls_on:
                                    buf += call_pack(sysc, t.proc.pid, tid, -1, ns // 1_000_000_000,
                                                     ns % 1_000_000_000, comms.get(tid) or comm_of(t),
                                                     0, 56, nr, 48, *args)  # fmt: skip
                                rec.entry_extra(t, nr, args, ns)
                                ptrace(resume, tid, 0, 0)
                            else:
                                ptrace(resume, tid, 0, 0)  # ESRCH: it died; its status will come
                                if calls_on:
                                    buf += call_pack(sysc, t.proc.pid, tid, -1, ns // 1_000_000_000,
                                                     ns % 1_000_000_000, comms.get(tid) or comm_of(t),
                                                     0, 56, nr, 48, *args)  # fmt: skip
                        elif op == op_exit:
                            nr, t.nr = t.nr, -1
                            if nr < 0 or not t.started or t.proc.pid in skip:
                                ptrace(resume, tid, 0, 0)
                                continue
                            rval = exit_of(info)[2]
                            ns = now(realtime)
                            if nr in exit_work:  # data and structures before RET, as OpenBSD
                                rec.exit_extra(t, nr, rval, ns)
                            ptrace(resume, tid, 0, 0)
                            if calls_on:
                                comm = comms.get(tid) or comm_of(t)
                                if -4095 <= rval <= -1:
                                    buf += err_pack(sysret, t.proc.pid, tid, -1, ns // 1_000_000_000,
                                                    ns % 1_000_000_000, comm, 0, 8, nr, -rval)  # fmt: skip
                                else:
                                    buf += ret_pack(sysret, t.proc.pid, tid, -1, ns // 1_000_000_000,
                                                    ns % 1_000_000_000, comm, 0, 16, nr, 0, rval)  # fmt: skip
                        else:
                            tracer.handle(tid, status)
                            continue
                        if len(buf) > limit:
                            flush()
                        continue
                tracer.handle(tid, status)
            except _WakeUp:
                break
            except OSError as e:
                if e.errno != errno.EINTR:
                    raise
    finally:
        if main:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old_alarm)
        flush()
