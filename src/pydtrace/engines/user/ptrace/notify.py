"""Entry probes of system calls without a ptrace stop: seccomp user notification.

A -c command's filter (seccomp.py) makes each call that only entry probes
want return SECCOMP_RET_USER_NOTIF: the calling thread waits in the kernel
while the tracer reads the call (number, arguments, thread) from a listener
descriptor, fires the probes, and answers "continue". A ptrace stop costs
two wake-ups of a task on another CPU (the kernel wakes a resumed tracee
where it last ran); with SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (Linux 6.6) the
kernel switches from the caller to the tracer and back on one CPU, several
times cheaper. Return probes, exec, signals, ustack() and uregs[] still need
a stop and keep it.

The notifications are answered on a thread of their own (the ptrace thread
waits in waitid, the one call that sees ptrace stops), and probe clauses run
under `lock`, which the ptrace thread holds whenever it is not waiting.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import struct
import threading
from collections.abc import Callable

from pydtrace.engines.user.ptrace import syscalls as sc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# ioctls of the listener: _IOWR('!', 0, struct seccomp_notif), _IOWR('!', 1,
# struct seccomp_notif_resp), _IOW('!', 4, __u64)
NOTIF_RECV = 0xC0502100
NOTIF_SEND = 0xC0182101
NOTIF_SET_FLAGS = 0x40082104
USER_NOTIF_FD_SYNC_WAKE_UP = 1
USER_NOTIF_FLAG_CONTINUE = 1

# struct seccomp_notif: u64 id, u32 pid (our namespace's tid), u32 flags,
# then struct seccomp_data: s32 nr, u32 arch, u64 ip, u64 args[6]
_NOTIF = struct.Struct("<QIIiIQ6Q")
_RESP = struct.Struct("<QqiI")  # id, val, error, flags


# What a clause can do only to a thread in a ptrace stop: read its registers
# (ustack, uregs), or signal it (raise, stop: a signal ends the wait for an
# answer, the call restarts and would notify, and fire, again).
_STOP_CALLS = frozenset({"ustack", "jstack", "raise", "stop"})
_STOP_NAMES = frozenset({"uregs", "ucaller"})


def needs_stops(clauses: list[Any]) -> bool:
    """Does any clause do what only a stopped thread allows?"""
    from pydtrace.lang.ast import uses

    return uses([(c.predicate, c.body) for c in clauses], _STOP_CALLS, _STOP_NAMES)


def usable() -> bool:
    """Can this kernel, under whatever filter we run in, hand a listener over
    (pidfd_open + pidfd_getfd, Linux 5.6)? Asked with bad arguments: EBADF
    says the calls exist, ENOSYS or EPERM (a container's filter) that not."""
    for nr, args in (
        (sc.SYS_PIDFD_OPEN, (0, 1 << 30)),
        (sc.SYS_PIDFD_GETFD, (-1 & 0xFFFFFFFF, 0, 0)),
    ):
        try:
            sc.syscall(nr, *args)
        except OSError as e:
            if e.errno in (errno.ENOSYS, errno.EPERM):
                return False
    return True


class Notifier:
    """Answers the notifications of the listeners of our -c commands."""

    def __init__(self, fire: Callable[[int, int, tuple[int, ...]], None]) -> None:
        self.fire = fire  # (tid, nr, args): fires the entry probes (called under lock)
        self.lock = threading.Lock()
        self.fds: list[int] = []
        self.error: BaseException | None = None  # raised by the clauses: ends the run
        self.answered = 0  # notifications answered (tests count them)
        self.on_error: Callable[[], None] | None = None
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC)
        self._stopping = False
        self._thread: threading.Thread | None = None

    def add(self, fd: int) -> None:
        """Answer fd's notifications from now on (its caller waits for that)."""
        try:  # the same-CPU hand-over; older kernels work without it
            sc.ioctl(fd, NOTIF_SET_FLAGS, USER_NOTIF_FD_SYNC_WAKE_UP)
        except OSError:
            pass
        self.fds.append(fd)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pydtrace-notify", daemon=True)
            self._thread.start()
        else:
            os.write(self._wake_w, b"a")

    def stop(self) -> None:
        """No more answers, and no more clauses run: a caller waiting for
        its answer stays blocked until the tracer kills the -c commands.
        (Closing the listener instead would fail its calls with ENOSYS while
        the command runs on.) Whoever holds lock may call this."""
        self._stopping = True
        if self._thread is not None:
            os.write(self._wake_w, b"s")
            self._thread.join()
            self._thread = None

    def close(self) -> None:
        """Once the commands are gone: the listeners and the wake pipe."""
        self.stop()
        for fd in self.fds:
            os.close(fd)
        self.fds = []
        if self._wake_r >= 0:
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_r = self._wake_w = -1

    def _run(self) -> None:
        try:
            self._serve()
        except BaseException as e:  # noqa: BLE001 - the main thread reports it
            # no one answers from here: the run ends and the commands are killed
            self.error = self.error or e
            if self.on_error is not None:
                self.on_error()

    def _serve(self) -> None:
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        watched: set[int] = set()
        req = ctypes.create_string_buffer(_NOTIF.size)
        resp = ctypes.create_string_buffer(_RESP.size)
        ioctl = sc.raw_ioctl
        while not self._stopping:
            for fd in self.fds:
                if fd not in watched:
                    poller.register(fd, select.POLLIN)
                    watched.add(fd)
            for fd, ev in poller.poll():
                if fd == self._wake_r:
                    os.read(fd, 64)
                    continue
                if ev & select.POLLIN:
                    self._answer(fd, req, resp, ioctl)
                elif ev & (select.POLLHUP | select.POLLERR):
                    poller.unregister(fd)  # every task of its filter is gone

    def _acquire(self) -> bool:
        """The lock, unless we are told to stop while the holder keeps it."""
        while not self.lock.acquire(timeout=0.05):
            if self._stopping:
                return False
        return not self._stopping

    def _answer(self, fd: int, req: Any, resp: Any, ioctl: Any) -> None:
        ctypes.memset(req, 0, _NOTIF.size)
        if ioctl(fd, NOTIF_RECV, req) < 0:
            return  # ENOENT: the caller was interrupted (a signal) or killed
        nid, tid, _flags, nr, _arch, _ip, *args = _NOTIF.unpack(req.raw)
        try:
            if self.error is None and self._acquire():
                try:
                    self.fire(tid, nr, tuple(args))
                finally:
                    self.lock.release()
        except BaseException as e:  # noqa: BLE001 - the main thread reports it
            self.error = e
            if self.on_error is not None:
                self.on_error()
        finally:
            # answered whatever happened: a caller left waiting would hang
            _RESP.pack_into(resp, 0, nid, 0, 0, USER_NOTIF_FLAG_CONTINUE)
            ioctl(fd, NOTIF_SEND, resp)
            self.answered += 1
