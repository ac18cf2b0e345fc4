"""The context of one probe firing in the user-space engine, and what it
reads of the thread that fired (registers, user stack) or does to it (signals)."""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Callable
from typing import Any

from pydtrace.consume.records import Item, Record

Fn = Callable[["Firing"], Any]


class Firing:
    """The context of one probe firing: who fired, its arguments, clause-local state."""

    __slots__ = ("probe", "args", "cpu", "tid", "pid", "ppid", "uid", "gid", "execname",
                 "errno", "this", "items", "at", "ts", "wts", "spec", "clause", "process", "commits", "owned", "dvar_dropped",
                 "argsp")  # fmt: skip

    def __init__(self, probe: Any, args: list[int], cpu: int = 0, process: Any = None) -> None:
        self.probe = probe
        self.args = args
        self.cpu = cpu
        self.process = process  # the traced process's facts, when an event source has one
        # pydtrace's own identity, for its own probes (BEGIN, tick): an event
        # source of traced processes overwrites these
        self.tid, self.pid, self.ppid, self.uid, self.gid, self.execname = _OWN or _own()
        self.errno = 0
        self.this: dict[str, Any] = {}
        self.items: list[Item] = []
        self.at = 0  # when a traced thread stopped, for a firing run after it resumed
        self.ts = 0
        self.wts = 0
        self.spec = 0
        self.clause = 0
        self.commits: list[Record] = []  # committed speculations, emitted after the clause
        self.owned: list[int] = []  # memory regions that live only as long as this firing
        self.dvar_dropped = False  # has the running clause dropped a dynamic variable store?
        self.argsp = 0  # `args`: the address of an event's argument struct (tracefs's sdt)


# uregs[21..25] (R_DS, R_ES, R_FS, R_GS, R_TRAPNO) in user_regs_struct; no trap number
_UREGS_EXTRA = (23, 24, 21, 22, None)


def uregs(f: Firing, i: int) -> int:
    """uregs[i] of the stopped thread that fired (0 for pydtrace's own probes)."""
    if f.process is None:
        return 0
    from pydtrace.engines.user.ptrace.syscalls import get_regs

    at = i if i < 21 else _UREGS_EXTRA[i - 21]
    try:
        return get_regs(f.tid)[at] if at is not None else 0
    except OSError:
        return 0


def ustack(f: Firing, n: int) -> Any:
    """The user stack of the stopped thread that fired: its pc, then the
    return addresses found by walking the frame pointers, as the kernel's
    perf callchains (and so the eBPF engine's ustack()) do."""
    from pydtrace.consume.stacks import StackKey, remember

    frames: list[int] = []
    if f.process is not None:
        from pydtrace.engines.user.ptrace.syscalls import get_regs, process_vm_readv

        try:
            regs = get_regs(f.tid)
        except OSError:
            regs = ()
        if regs:
            frames.append(regs[16])  # rip
            fp = regs[4]  # rbp
            while len(frames) < n and fp and not fp % 8:
                try:
                    data = process_vm_readv(f.tid, fp, 16)
                except OSError:  # rbp held no frame pointer (code built without them)
                    break
                if len(data) < 16:
                    break
                nxt, ret = struct.unpack("<QQ", data)
                if not ret:
                    break
                frames.append(ret)
                if nxt <= fp:  # the stack grows down: callers' frames lie above
                    break
                fp = nxt
    key = StackKey("ustack", tuple(frames[:n]), f.pid if f.process is not None else -1)
    remember(key)
    return key


def send_signal(f: Firing, sig: int, thread: bool) -> None:
    """stop()/raise(): signal the traced process (or thread) that fired.
    Firings of pydtrace's own (BEGIN, tick) have no traced process to signal."""
    if f.process is None:
        return
    try:
        if thread:
            _tgkill(f.pid, f.tid, sig)
        else:
            os.kill(f.pid, sig)
    except OSError:
        pass  # it is gone: its exit will be reported


def _tgkill(tgid: int, tid: int, sig: int) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.tgkill(tgid, tid, sig) < 0:
        raise OSError(ctypes.get_errno(), "tgkill")


_OWN: tuple[int, int, int, int, int, str] | None = None


def _own() -> tuple[int, int, int, int, int, str]:
    global _OWN
    _OWN = (
        threading.get_native_id(),
        os.getpid(),
        os.getppid(),
        os.getuid(),
        os.getgid(),
        _own_comm(),
    )
    return _OWN


_COMM: str | None = None


def _own_comm() -> str:
    global _COMM
    if _COMM is None:
        try:
            with open("/proc/self/comm") as f:
                _COMM = f.read().strip()
        except OSError:
            _COMM = "pydtrace"
    return _COMM


class Skip(Exception):
    """The clause ends here: a false predicate, a dynamic variable drop, an
    inactive speculation."""
