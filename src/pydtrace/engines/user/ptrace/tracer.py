"""The ptrace event loop: start or grab targets, follow their descendants,
and report syscall entries/returns and process events to a sink.

A Sink has:  entry(thread, nr, args), exit(thread, nr, rval),
proc(kind, thread, args) and wants(kind) — kinds: create, lwp-create, start,
lwp-start, exec-success, exit, lwp-exit, signal-handle (exec, exec-failure and
signal-send the sink derives from syscalls).  Stops are always resumed (or kept in a group stop
with PTRACE_LISTEN), so no tracee is ever left stopped by us.

A -p target is seized without PTRACE_O_EXITKILL: if we die, even by SIGKILL,
the kernel detaches it and it runs on. Its stops are looked at without being
consumed (step), so that a signal a thread stopped to deliver is still
delivered then; a stop signal is handed on first at detach, and job control
works throughout (docs/internals/user-engine.md, "Targets of -p").
"""

from __future__ import annotations

import errno
import os
import select
import signal
import threading
import time

from pydtrace.engines.launch import close_private_fds
from pydtrace.engines.user.procinfo import catches_signal, parent_of, tgid_of
from pydtrace.engines.user.ptrace import syscalls as sc
from pydtrace.lang.dataclass import dataclass, field
from pydtrace.symbols.process import forget

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pydtrace.engines.signals import StopFlag

OPTIONS = (
    sc.O_TRACESYSGOOD | sc.O_TRACEEXEC | sc.O_TRACEEXIT | sc.O_TRACEFORK
    | sc.O_TRACEVFORK | sc.O_TRACECLONE
)  # fmt: skip
_STOPSIGS = {signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU}
# what waitpid(-1, __WALL | __WNOTHREAD) waits for (ptrace stops are reported
# without WSTOPPED; a stopped child of ours we do not trace is not), not taken
_PEEK = sc.WALL | sc.WNOTHREAD | os.WEXITED | os.WNOWAIT
_SYSCALL_TRAP = signal.SIGTRAP | 0x80
_CALL_STOPS = (_SYSCALL_TRAP, signal.SIGTRAP | sc.EVENT_SECCOMP << 8)  # waitid's si_status
_CLD_EXITED, _CLD_KILLED, _CLD_DUMPED = 1, 2, 3


class TraceError(Exception):
    """A target could not be started or grabbed; str() is the message."""


@dataclass
class Process:
    """What D variables say about a traced process (read from /proc at need)."""

    pid: int
    ppid: int = 0
    uid: int = 0
    gid: int = 0
    execname: str = ""
    loaded: bool = False

    def load(self) -> None:
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    key, _, val = line.partition(":")
                    if key == "Name":
                        self.execname = val.strip()
                    elif key == "PPid":
                        self.ppid = int(val)
                    elif key == "Uid":
                        self.uid = int(val.split()[0])
                    elif key == "Gid":
                        self.gid = int(val.split()[0])
        except (OSError, ValueError):
            pass
        try:  # comm is the 15-byte name dtrace shows; status escapes some bytes
            with open(f"/proc/{self.pid}/comm") as f:
                self.execname = f.read().rstrip("\n")
        except OSError:
            pass
        self.loaded = True


@dataclass
class Thread:
    tid: int
    proc: Process
    filtered: bool = False  # under our seccomp filter: resume with CONT
    started: bool = True  # events are reported (a -c child: only after its exec)
    nr: int = -1  # the syscall in progress (-1: none known)
    args: tuple[int, ...] = ()
    held: int | None = None  # stopped and not resumed yet: the restart signal
    listening: bool = False
    fresh: bool = False  # a new thread whose first stop has not come yet
    exiting: bool = False  # its exit stop came: no longer one of its process's threads

    # --- the Firing's view ---------------------------------------------------
    @property
    def pid(self) -> int:
        return self.proc.pid

    def read(self, addr: int, size: int) -> bytes:
        return read_memory(self.tid, addr, size)


PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def read_memory(tid: int, addr: int, size: int) -> bytes:
    """Up to size bytes of the tracee at addr, page by page; short at the
    first unreadable page.  Falls back to /proc/PID/mem (which may read
    pages process_vm_readv cannot) when the first read gives nothing."""
    out = bytearray()
    while len(out) < size:
        a = addr + len(out)
        chunk = min(size - len(out), PAGE - a % PAGE)
        try:
            got = sc.process_vm_readv(tid, a, chunk)
        except OSError:
            got = _read_mem_file(tid, a, chunk)
        if not got:
            got = _read_mem_file(tid, a, chunk)
        out += got
        if len(got) < chunk:
            break
    return bytes(out)


def _read_mem_file(tid: int, addr: int, size: int) -> bytes:
    try:
        fd = os.open(f"/proc/{tid}/mem", os.O_RDONLY)
    except OSError:
        return b""
    try:
        return os.pread(fd, size, addr)
    except (OSError, OverflowError):
        return b""
    finally:
        os.close(fd)


def read_string(tid: int, addr: int, limit: int) -> bytes | None:
    """The NUL-terminated string at addr, at most limit bytes; None if unreadable."""
    out = bytearray()
    while len(out) < limit:
        a = addr + len(out)
        chunk = min(limit - len(out), PAGE - a % PAGE)
        got = read_memory(tid, a, chunk)
        if not got:
            return bytes(out) if out else None
        nul = got.find(b"\0")
        if nul >= 0:
            return bytes(out + got[:nul])
        out += got
        if len(got) < chunk:
            break
    return bytes(out[:limit])


@dataclass
class Target:
    pid: int
    created: bool
    argv: list[str] = field(default_factory=list)
    gate: int = -1  # pipe the child reads its seccomp filter from (-c only)
    errpipe: int = -1  # exec failure errno (-c only)
    report: int = -1  # the child's listener descriptor number, or -errno (-c only)
    status: int | None = None  # its wait status once reaped (the Python API reports it)


LISTENER_TIMEOUT = 10.0  # seconds a -c child may take to install its listener filter
DETACH_TIMEOUT = 5.0  # seconds detach_all tries before it leaves a task that does not stop
# seconds detach_all waits for every task of a process to be in a stop before
# it detaches any (a vfork parent cannot stop: its process is detached anyway)
SETTLE_TIMEOUT = 0.5
# Non-blocking waits (0.4 to 1.5 us each) before a blocking one. A tracee's
# next stop comes some tens of microseconds after its resume (it is woken on
# the other CPU, out of idle); a tracer that has gone to sleep meanwhile must
# be woken the same way, which doubles the cost of the stop. Counting every
# call of dd bs=1 on an idle 2-CPU guest took 1.64 s with 20 waits and 0.86 s
# with 100. A thread kept stopped longer (a printing clause) wakes later
# still: dtruss on dd bs=1 count=5000 took 2.4 s with 100, 2.0 s with 400,
# 1.9 s with 1000, each in less CPU time than the one before. 400 waits spin
# at most 0.2 to 0.6 ms before the tracer sleeps. A tracee that computes
# between its calls outlasts any spin: each spin that ends in a sleep halves
# the next one (down to SPIN_MIN), each stop caught awake doubles it (up to
# SPIN), as the kernel's halt polling adapts its own.
SPIN = 400
SPIN_MIN = 25


class Tracer:
    def __init__(self, sink: Any = None) -> None:
        self.sink = sink
        self.targets: list[Target] = []
        self.live: set[int] = set()  # target pids not yet exited
        self.threads: dict[int, Thread] = {}
        self.procs: dict[int, Process] = {}
        self.in_wait = False  # in a blocking wait a signal handler may break (step)
        self.stopping: StopFlag | None = None  # set: step() does not block
        # Non-blocking waits tried before a blocking one: catching a stop
        # awake saves the sleep and the wake-up (both cost more than the stop
        # itself); only with a CPU to spare, which the tracee is not using.
        self.spin_max = SPIN if len(os.sched_getaffinity(0)) > 1 else 0
        self.spin = self.spin_max
        # the calls whose exit stop is needed (None: all); under a seccomp
        # filter the others resume with CONT, which skips their exit stop
        self.exit_numbers: set[int] | None = None
        # answers the seccomp notifications of entry-only calls (notify.py);
        # while it runs, this thread holds its lock except in waits
        self.notifier: Any = None
        self.stops = 0  # wait statuses handled (ptrace stops and exits): tests count them
        self.notified = 0  # calls answered by a finished notifier (tests count them)
        self.on_drain: Any = None  # called (notifier thread) when a notified probe ends the run

    # --- bookkeeping -----------------------------------------------------------
    def process(self, pid: int) -> Process:
        p = self.procs.get(pid)
        if p is None:
            p = self.procs[pid] = Process(pid)
        if not p.loaded:
            p.load()
        return p

    def _thread(self, tid: int, parent: Thread | None = None) -> Thread:
        t = self.threads.get(tid)
        if t is None:
            pid = tgid_of(tid)
            t = Thread(tid, self.procs.get(pid) or Process(pid))
            self.procs.setdefault(pid, t.proc)
            if parent is not None:
                t.filtered, t.started = parent.filtered, parent.started
                t.fresh = True
            self.threads[tid] = t
        return t

    def _newcomer(self, tid: int) -> Thread:
        """A thread seen before its creator's fork/clone event: it inherits
        from a thread of its own process, or of its parent process."""
        pid = tgid_of(tid)
        kin = next((x for x in self.threads.values() if x.proc.pid == pid), None)
        if kin is None:
            ppid = parent_of(pid)
            kin = next((x for x in self.threads.values() if x.proc.pid == ppid), None)
        return self._thread(tid, kin)

    # --- starting ----------------------------------------------------------------
    def spawn(self, argv: list[str]) -> int:
        """Fork a child for argv that stops itself and waits for its filter."""
        gate_r, gate_w = os.pipe()
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        report_r, report_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:  # the child: only plain system calls from here on
            try:
                close_private_fds(gate_r, err_w, report_w)  # an earlier child's gate among them
                os.kill(os.getpid(), signal.SIGSTOP)
                # each filter's length, then the filter: never "until EOF", for a
                # child forked meanwhile by another session of this process
                # holds a copy of our gate's write end until it execs
                code = _read_sized(gate_r)
                listening = _read_sized(gate_r)
                if code is None or listening is None:
                    os._exit(127)  # the session ended before releasing us
                if listening and _listen(listening, gate_r, report_w):
                    code = b""  # the listener's filter traces what the other would
                os.close(gate_r)
                os.close(report_w)
                # Python ignores SIGPIPE and SIGXFSZ; exec keeps ignored signals (the
                # command would get EPIPE where it dies of SIGPIPE untraced)
                for sig in (signal.SIGPIPE, signal.SIGXFSZ):
                    signal.signal(sig, signal.SIG_DFL)
                if code:
                    from pydtrace.engines.user.ptrace.seccomp import install

                    install(code)
                os.execvp(argv[0], argv)
            except OSError as e:
                os.write(err_w, str(e.errno or errno.ENOEXEC).encode())
            except BaseException:
                os.write(err_w, str(errno.ENOEXEC).encode())
            os._exit(127)
        os.close(gate_r)
        os.close(err_w)
        os.close(report_w)
        os.waitpid(pid, os.WUNTRACED)
        forget(pid)  # a symbol snapshot of a process that had the pid before
        sc.ptrace_seize(pid, OPTIONS | sc.O_TRACESECCOMP | sc.O_EXITKILL)
        t = self._thread(pid)
        t.started = False
        os.kill(pid, signal.SIGCONT)
        self.targets.append(Target(pid, True, argv, gate_w, err_r, report_r))
        self.live.add(pid)
        return pid

    def release(self, target: Target, code: bytes, listening: bytes = b"") -> None:
        """Send the filter (b"" for none) and let the child exec; wait until
        it has (the child is then held at its exec stop) or failed. With
        `listening`, a filter whose entry-only calls notify a listener
        (seccomp.build's notify), the child tries that one first and hands
        its listener over; where the kernel refuses, it installs `code`."""
        t = self.threads[target.pid]
        t.filtered = bool(code)
        try:
            _write_all(target.gate, _sized(code) + _sized(listening))
            if listening:
                self._take_listener(target)
        finally:
            os.close(target.gate)
            target.gate = -1
            os.close(target.report)
            target.report = -1
        while not t.started and target.pid in self.live:
            self.step(block=True, hold_exec=target.pid)
        # the child wrote its errno before it exited: never wait for EOF here
        # (a child another session forked meanwhile holds a copy of the pipe)
        os.set_blocking(target.errpipe, False)
        try:
            data = b"" if t.started else os.read(target.errpipe, 32)
        except BlockingIOError:
            data = b""
        os.close(target.errpipe)
        if data:
            e = int(data)
            raise TraceError(f"failed to execute {target.argv[0]}: {os.strerror(e)}")

    def _take_listener(self, target: Target) -> None:
        """Take a copy of the child's listener, then tell it to go on. The
        child says which descriptor number the listener will get, installs
        the filter, and says "ok" or -errno (it fell back to the plain
        filter). Once installed, any call the child makes may wait for an
        answer, "ok"'s write among them: so the descriptor itself is looked
        for too."""
        n = -1  # the descriptor number, once said
        deadline = time.monotonic() + LISTENER_TIMEOUT
        poller = select.poll()
        poller.register(target.report, select.POLLIN)
        while True:
            # its stops meanwhile (the SIGCONT that let it run) are ours to resume
            while self.step(block=False, hold_exec=target.pid):
                pass
            if n >= 0:
                try:
                    if os.readlink(f"/proc/{target.pid}/fd/{n}") == "anon_inode:seccomp notify":
                        break
                except OSError:
                    pass
            if poller.poll(2):
                said = _read_exactly(target.report, 4)
                if said is None:
                    return  # it died
                value = int.from_bytes(said, "little", signed=True)
                if value < 0:
                    return  # it installed the plain filter instead
                if n < 0:
                    n = value
                continue  # "ok": the descriptor is there now
            if time.monotonic() > deadline:
                os.kill(target.pid, signal.SIGKILL)
                raise TraceError(f"failed to take {target.argv[0]}'s seccomp listener: timed out")
        try:
            fd = sc.pidfd_getfd(target.pid, n)
        except OSError as e:
            # the child holds the only copy and would exec with a filter
            # nobody answers: it must not run
            os.kill(target.pid, signal.SIGKILL)
            raise TraceError(
                f"failed to take {target.argv[0]}'s seccomp listener: {e.strerror}"
            ) from None
        if self.notifier is None:
            from pydtrace.engines.user.ptrace.notify import Notifier

            self.notifier = Notifier(self._notified)
            self.notifier.on_error = self._notifier_failed
            self.notifier.lock.acquire()  # ours but in waits (step)
            self.spin = self.spin_max = 0  # a waiting thread holds no lock: no busy waits
        self.notifier.add(fd)
        _write_all(target.gate, b"y")

    def _notifier_failed(self) -> None:
        """The notifier's clauses raised: end the run as exit() would."""
        if self.on_drain is not None:
            self.on_drain()

    def _notified(self, tid: int, nr: int, args: tuple[int, ...]) -> None:
        """A notified call's entry (the notifier's thread, under its lock)."""
        t = self.threads.get(tid)
        if t is None or not t.started or self.sink is None:
            return  # before the exec of the command: not reported
        later = self.sink.entry(t, nr, args)  # the caller waits for our answer meanwhile
        if later is not None:
            later()
        if self.on_drain is not None and self.sink.draining():
            self.on_drain()

    def quiet(self) -> None:
        """No probe fires from a notification from now on (END is next);
        re-raises what a clause run by the notifier raised."""
        if self.notifier is not None:
            self.notifier.stop()
            if self.notifier.error is not None:
                raise self.notifier.error

    def unlocked(self) -> Any:
        """A context in which the notifier may run clauses (a wait)."""
        return _Unlocked(self.notifier.lock if self.notifier is not None else None)

    def grab(self, pid: int) -> None:
        """PTRACE_SEIZE every thread of pid, then interrupt them for a first stop."""
        if not os.path.exists(f"/proc/{pid}"):
            raise TraceError(f"failed to grab pid {pid}: No such process")
        forget(pid)  # a symbol snapshot of a process that had the pid before
        me = threading.get_native_id()
        seen: set[int] = set()
        seized = 0
        while True:
            try:
                tids = {int(x) for x in os.listdir(f"/proc/{pid}/task")}
            except OSError:
                tids = set()
            new = tids - seen
            if not new:
                break
            for tid in sorted(new):
                try:
                    sc.ptrace_seize(tid, OPTIONS)
                except OSError as e:
                    if e.errno == errno.ESRCH:
                        continue  # exited meanwhile
                    # EPERM for a thread a seized one created meanwhile (the
                    # kernel attached it to us at the clone: it comes with
                    # its creator's clone event), and for a zombie leader
                    # whose threads live on: neither is a refusal
                    if e.errno == errno.EPERM:
                        tracer = _tracer_of(tid)
                        if tracer == me:
                            seized += 1
                            continue
                        if _state(tid) in "ZX":
                            continue
                        if tracer:
                            self.detach_all()
                            raise TraceError(
                                f"failed to grab pid {pid}: {e.strerror}\n"
                                f"(it is traced by pid {tracer} already: a process has one"
                                " tracer at a time)"
                            ) from None
                    self.detach_all()
                    raise TraceError(_grab_message(pid, e)) from None
                seized += 1
                self._thread(tid)
                try:
                    sc.ptrace(sc.PTRACE_INTERRUPT, tid)
                except OSError:
                    pass  # exited meanwhile: its exit status comes
            seen |= new
        if not seized:  # gone, or a zombie without a thread left
            raise TraceError(f"failed to grab pid {pid}: No such process")
        self.targets.append(Target(pid, False))
        self.live.add(pid)

    # --- the loop -------------------------------------------------------------------
    def resume_held(self) -> None:
        for t in list(self.threads.values()):
            if t.held is not None:
                self._resume(t, t.held)

    def step(self, block: bool = True, hold_exec: int = -1) -> bool:
        """Handle one wait status; False if none was ready (or no tracees),
        or if `stopping` is set before a blocking wait.

        A ptrace stop is looked at with WNOWAIT and never consumed: resuming
        the tracee ends it. Consuming a stop clears the signal a
        signal-delivery stop holds in the kernel, so a tracer killed between
        its wait and the resume (kill -9 of pydtrace, at any moment) would
        lose that signal; not consumed, the kernel delivers it on detaching
        us. Exits are reaped. A signal handler may break a blocking wait by
        raising while in_wait is set (engine.install_signal_handlers): it
        loses nothing, and `stopping`, read once in_wait is set, keeps a
        stop asked for just before from waiting at all."""
        try:
            got = None
            # a tracee's next stop mostly comes within microseconds
            spun = self.spin if block else 0
            for _ in range(spun + 1):
                got = os.waitid(os.P_ALL, 0, _PEEK | os.WNOHANG)
                if got is not None:
                    break
            if got is not None:
                if block and spun < self.spin_max:
                    self.spin = min(spun * 2, self.spin_max)
            else:
                if not block:
                    return False
                if spun:
                    self.spin = max(spun // 2, SPIN_MIN)
                self.in_wait = True
                try:
                    if self.stopping is not None and self.stopping.is_set():
                        return False
                    lock = self.notifier.lock if self.notifier is not None else None
                    if lock is not None:
                        lock.release()
                    try:
                        got = os.waitid(os.P_ALL, 0, _PEEK)
                    finally:
                        # not interruptible from here: the handler raises only in a wait
                        self.in_wait = False
                        if lock is not None:
                            lock.acquire()
                finally:
                    self.in_wait = False
            tid = got.si_pid
            if got.si_code == os.CLD_TRAPPED:  # waitpid's status, not taken
                if got.si_status in _CALL_STOPS and tid in self.threads:
                    # the hot path, handle()'s for a syscall or seccomp stop
                    self.stops += 1
                    if got.si_status == _SYSCALL_TRAP:
                        self.on_syscall_stop(self.threads[tid])
                    else:
                        self.on_seccomp_stop(self.threads[tid])
                    return True
                status = got.si_status << 8 | 0x7F
            else:  # exited or killed: reaped
                tid, status = os.waitpid(tid, sc.WALL | sc.WNOTHREAD | os.WNOHANG)
        except ChildProcessError:
            self.live.clear()
            return False
        if tid == 0:
            return False
        self.handle(tid, status, hold_exec)
        return True

    def handle(self, tid: int, status: int, hold_exec: int = -1) -> None:
        """Act on one wait status of a tracee (step() is a wait + this; a
        caller with its own wait loop calls it directly). Every stop is
        resumed, or kept in its group stop with PTRACE_LISTEN, or (the exec
        of a -c child) held until resume_held()."""
        self.stops += 1
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            self.on_gone(tid, status)
            return
        if not os.WIFSTOPPED(status):
            return
        t = self.threads.get(tid) or self._newcomer(tid)
        sig = os.WSTOPSIG(status)
        event = status >> 16
        # Each stop is resumed exactly once: a second PTRACE_SYSCALL would skip
        # the tracee's next stop if it got there in between.
        if sig == _SYSCALL_TRAP:
            self.on_syscall_stop(t)
            return
        if event in (sc.EVENT_FORK, sc.EVENT_VFORK, sc.EVENT_CLONE):
            self._new_child(t, event)
            return
        if event == sc.EVENT_EXEC:
            # taken before anything else: until then the kernel refuses
            # ptrace requests on an exec stop whose thread took the leader's
            # pid (it "looks like a spurious pid"), ESRCH
            _take(tid)
            self._exec(t)
            t = self.threads[tid]
            if tid == hold_exec:
                t.held = 0  # dtrace holds a created process at its exec
                return
        elif event == sc.EVENT_EXIT:
            self._exiting(t)
            if self._parents_own(t):
                self._let_go(t)
                return
        elif event == sc.EVENT_SECCOMP:
            self.on_seccomp_stop(t)
            return
        elif event == sc.EVENT_STOP:
            if sig in _STOPSIGS:  # group stop: stay stopped, keep job control working
                self._listen(t)
                return
            if t.fresh:  # a new thread's first stop: it is about to run
                t.fresh = False
                if t.started and self.sink is not None:
                    if t.tid == t.proc.pid:  # a process's first thread: both, as dtrace
                        self.sink.proc("start", t, [])
                    self.sink.proc("lwp-start", t, [])
        elif sc.has_siginfo(tid):  # signal-delivery stop: pass the signal on unchanged
            t.held = sig  # until resumed: a detach meanwhile (an error, a second ^C) hands it on
            if t.started and self.sink is not None and self.sink.wants("signal-handle"):
                if catches_signal(t.proc.pid, sig):  # a handler will run, not the default action
                    self.sink.proc("signal-handle", t, [sig])
            self._resume(t, sig)
            return
        self._resume(t, 0)

    def on_syscall_stop(self, t: Thread) -> None:
        """Hook: t stopped at a call's entry or exit (PTRACE_SYSCALL); reports
        it and resumes t, then fires what can run while t runs on (the
        ktrace recorder has a shorter path of its own)."""
        try:
            info = sc.get_syscall_info(t.tid)
        except OSError:
            self._resume(t, 0)  # every stop is resumed (ESRCH: it died meanwhile)
            return
        if info.op == sc.OP_ENTRY:
            if t.nr >= 0 and t.filtered:  # seccomp stop already reported it
                self._resume(t, 0, syscall=True)
                return
            t.nr, t.args = info.nr, info.args
            later = None
            if t.started and self.sink is not None:
                later = self.sink.entry(t, info.nr, info.args)
            self._resume(t, 0, syscall=True)
            if later is not None:
                later()
        elif info.op == sc.OP_EXIT:
            nr, t.nr = t.nr, -1
            later = None
            if nr >= 0 and t.started and self.sink is not None:
                later = self.sink.exit(t, nr, info.rval)
            self._resume(t, 0)
            if later is not None:
                later()
        else:
            self._resume(t, 0)

    def on_seccomp_stop(self, t: Thread) -> None:
        """Hook: t stopped at a call our seccomp filter traces; reports its
        entry and resumes it (to its exit stop when that is wanted)."""
        try:
            info = sc.get_syscall_info(t.tid)
        except OSError:
            self._resume(t, 0)
            return
        later = None
        if t.started and self.sink is not None:
            later = self.sink.entry(t, info.nr, info.args)
        if self.exit_numbers is None or info.nr in self.exit_numbers:
            t.nr, t.args = info.nr, info.args
            self._resume(t, 0, syscall=True)  # to see this call's exit stop
        else:
            t.nr = -1
            self._resume(t, 0)  # CONT: the next stop is the next traced call
        if later is not None:
            later()

    def _new_child(self, t: Thread, event: int) -> None:
        try:
            child = sc.geteventmsg(t.tid)
        except OSError:
            child = 0
        if child:
            c = self._thread(child, t)
            if c.tid == c.proc.pid:  # a new process: a snapshot kept for its pid is another's
                forget(child)
            c.filtered, c.started = t.filtered, t.started
            if t.started and self.sink is not None:
                self.on_created(t, c)
        self._resume(t, 0)

    def on_created(self, t: Thread, c: Thread) -> None:
        """Hook: thread t (reported) created c, a thread or a process. The D
        engine fires proc:::create/lwp-create; the ktrace recorder overrides
        it to write FORK."""
        from pydtrace.engines.user import procinfo

        if c.proc.pid == t.proc.pid:
            if self.sink.wants("lwp-create"):
                pid = c.proc.pid
                info = [procinfo.lwpsinfo(pid, c.tid), procinfo.psinfo(pid, c.tid)]
                self.sink.proc("lwp-create", t, info)
        elif self.sink.wants("create"):
            self.sink.proc("create", t, [procinfo.psinfo(c.proc.pid)])

    def _exec(self, t: Thread) -> None:
        try:
            former = sc.geteventmsg(t.tid)
        except OSError:
            former = t.tid
        if former != t.tid:  # a non-leader thread exec'd and took the leader's tid
            old = self.threads.pop(former, None)
            if old is not None:
                t.nr, t.args = old.nr, old.args
        for other in [x for x in self.threads.values() if x.proc is t.proc and x is not t]:
            if other.tid != t.tid and not os.path.exists(f"/proc/{other.tid}"):
                self.threads.pop(other.tid, None)
        t.proc.loaded = False  # comm changed
        forget(t.proc.pid)  # its mappings changed
        # a -c child's own first exec happens before tracing starts, as in dtrace
        was_started, t.started = t.started, True
        if was_started and self.sink is not None:
            self.sink.proc("exec-success", t, [])

    def _exiting(self, t: Thread) -> None:
        t.exiting = True
        if t.started and self.sink is not None:
            try:
                st = sc.geteventmsg(t.tid)
            except OSError:
                st = 0
            # the last thread: the others have had their exit stops (one may not
            # be reaped yet: a busy tracer's wait can report its death later)
            last = not any(x.proc is t.proc and not x.exiting for x in self.threads.values())
            self.sink.proc("lwp-exit", t, [])  # every thread; the last one then exit
            if last:
                reason = _CLD_EXITED
                if os.WIFSIGNALED(st):
                    reason = _CLD_DUMPED if os.WCOREDUMP(st) else _CLD_KILLED
                self.sink.proc("exit", t, [reason])

    def _parents_own(self, t: Thread) -> bool:
        """Is t the leader of a -p target that is a child of this very process
        (a Popen traced through the Python API's pids=)? Reaping it here would
        take its exit status from its parent: the kernel reaps a tracee fully
        for a tracer in the thread group of its parent."""
        pid = t.tid
        return (
            pid == t.proc.pid
            and any(x.pid == pid and not x.created for x in self.targets)
            and parent_of(pid) == os.getpid()
        )

    def _let_go(self, t: Thread) -> None:
        """Detach t in its exit stop, so that its parent reaps it; it is gone for us."""
        try:
            status = sc.geteventmsg(t.tid)
        except OSError:
            status = 0
        try:
            sc.ptrace(sc.PTRACE_DETACH, t.tid, 0, 0)
        except OSError:
            pass  # killed meanwhile: it exits all the same
        self.on_gone(t.tid, status)

    def on_gone(self, tid: int, status: int) -> None:
        """Hook: thread tid has been reaped with wait status `status`."""
        self.threads.pop(tid, None)
        for target in self.targets:
            if target.pid == tid:
                target.status = status
        if tid in self.live:
            self.live.discard(tid)
        if tid in self.procs and not any(x.proc.pid == tid for x in self.threads.values()):
            del self.procs[tid]

    def _listen(self, t: Thread) -> None:
        try:
            sc.ptrace(sc.PTRACE_LISTEN, t.tid)
            t.listening = True
        except OSError:
            pass

    def _resume(self, t: Thread, sig: int, syscall: bool = False) -> None:
        t.held = None
        t.listening = False
        req = sc.PTRACE_SYSCALL if (syscall or not t.filtered or t.nr >= 0) else sc.PTRACE_CONT
        try:
            sc.resume(req, t.tid, sig)
        except OSError:
            pass  # ESRCH: it died; its exit status will come

    # --- ending -------------------------------------------------------------------------
    def finish(self) -> None:
        """Leave no tracee stopped: kill processes we created (as dtrace does,
        and because a seccomp filter without its tracer makes calls fail),
        detach from everything else so it runs on as before."""
        for target in self.targets:
            if target.gate >= 0:
                os.close(target.gate)
                target.gate = -1
            if target.report >= 0:
                os.close(target.report)
                target.report = -1
        if self.notifier is not None:
            self.notifier.stop()  # before the kill: no clause runs meanwhile
        # A child the kernel attached at a fork whose event we have not
        # handled yet is ours all the same, with its parent's filter: it is
        # adopted before we choose what to kill, and again after a kill (a
        # process killed in its fork event stop leaves its new child).
        doomed: set[int] = set()
        while True:
            if any(x.filtered for x in self.threads.values()):
                unseen = _traced_by(threading.get_native_id()).keys() - self.threads.keys()
                for tid in sorted(unseen):
                    self._newcomer(tid)
            more = {x.proc.pid for x in self.threads.values() if x.filtered}
            more |= {t.pid for t in self.targets if t.created and t.pid in self.live}
            more -= doomed
            if not more:
                break
            for pid in more:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            doomed |= more
        self.detach_all(skip=doomed)
        self._reap(doomed)
        if self.notifier is not None:  # its callers are gone: no call fails for its closing
            self.notifier.close()
            self.notified += self.notifier.answered
            self.notifier = None

    def detach_all(self, skip: set[int] | None = None) -> set[int]:
        """Detach from every task this thread traces but the processes in
        skip, each in a stop, so that it runs on as if never traced. The
        tasks are those we know and those the kernel attached at a fork we
        have not handled yet (found in /proc): such a child waits in its
        first stop, and a vfork parent waits in the kernel until that child
        execs or exits, where no PTRACE_INTERRUPT can stop it; so each task
        is tried in turn until all are detached or gone. Returns the tids
        still traced after DETACH_TIMEOUT seconds (a task that never stops,
        say a vfork parent whose child we do not trace and that does not exec)."""
        skip = skip or set()
        me = threading.get_native_id()
        todo = {t.tid for t in self.threads.values() if t.proc.pid not in skip}
        interrupted: set[int] = set()
        now = time.monotonic()
        deadline = now + DETACH_TIMEOUT
        settle = now + SETTLE_TIMEOUT
        pause = 0.0005
        while True:
            # a signal held in a thread's signal-delivery stop first: a
            # SIGSTOP it hands on stops the threads detached after it before
            # they run, as it would have without us (taken from the shared
            # queue by one thread, it stopped none of the others yet)
            held = self._unsettled(todo, interrupted) if time.monotonic() < settle else set()
            for tid in sorted(todo - held, key=lambda x: (not self._signal_stop(x), x)):
                if self._detach(tid, todo, interrupted):
                    todo.discard(tid)
            # the kernel's own list: children it attached at a fork whose
            # event stop we have not seen, or detached from a moment ago
            found = {tid for tid, pid in _traced_by(me).items() if pid not in skip}
            if not todo and not found:
                break
            todo |= found
            if time.monotonic() > deadline:
                break
            time.sleep(pause)  # for the interrupted ones to stop
            pause = min(pause * 2, 0.02)
        for t in [x for x in self.threads.values() if x.proc.pid not in skip]:
            self.threads.pop(t.tid, None)
        return todo

    def _unsettled(self, todo: set[int], interrupted: set[int]) -> set[int]:
        """The stopped tasks of the processes that have a task in todo not in
        a ptrace stop yet, which is interrupted here: they wait until it has
        stopped too. It may be taking a signal from the shared queue (D's
        stop() sends SIGSTOP to the process; the thread woken for it may not
        have run yet on a busy machine): detached before that stop shows, a
        thread stopped in a system call would run on, its process's SIGSTOP
        taken by the other thread, and stop only once that one is detached."""
        tgid = {
            tid: t.proc.pid if (t := self.threads.get(tid)) is not None else tgid_of(tid)
            for tid in todo
        }
        moving = set()
        for tid in todo:
            if _state(tid) not in "tZX":
                moving.add(tgid[tid])
                _interrupt_once(tid, interrupted)
        # read again: a task just interrupted may have stopped, and waits too
        return {tid for tid in todo if tgid[tid] in moving and _state(tid) == "t"}

    def _signal_stop(self, tid: int) -> bool:
        """Is tid in a signal-delivery stop (seen and not resumed, or not seen)?"""
        t = self.threads.get(tid)
        if t is not None and t.held:
            return True
        try:
            got = os.waitid(os.P_PID, tid, _PEEK | os.WNOHANG)
        except ChildProcessError:
            return False
        return (
            got is not None
            and got.si_code == os.CLD_TRAPPED
            and got.si_status >> 8 == 0
            and got.si_status != _SYSCALL_TRAP
        )

    def _detach(self, tid: int, todo: set[int], interrupted: set[int]) -> bool:
        """One try at detaching tid; True once it is detached or gone. The
        stop it is in, if we have not seen it, is looked at first: a fork,
        vfork or clone event names a new child, added to todo; the signal
        of a signal-delivery stop (or of one seen and not resumed) is handed
        back. A task running is interrupted (once) and tried again on the
        next round."""
        t = self.threads.get(tid)
        sig = (t.held or 0) if t is not None else 0  # a stop seen, not resumed yet
        try:  # looked at, not taken (see step): a kill -9 now still delivers its signal
            got = os.waitid(os.P_PID, tid, _PEEK | os.WNOHANG)
        except ChildProcessError:
            return True  # gone, or not ours
        if got is not None:
            if got.si_code != os.CLD_TRAPPED:
                _take(tid)
                return True  # exited, and reaped just now
            event, stopsig = got.si_status >> 8, got.si_status & 0xFF
            if event == sc.EVENT_EXEC:
                _take(tid)  # or PTRACE_DETACH may fail (see handle)
            elif event in (sc.EVENT_FORK, sc.EVENT_VFORK, sc.EVENT_CLONE):
                try:
                    todo.add(sc.geteventmsg(tid))
                except OSError:
                    pass
            elif not event and stopsig != _SYSCALL_TRAP and sc.has_siginfo(tid):
                sig = stopsig
        try:  # succeeds only if it is in a ptrace stop (even one we never saw)
            sc.ptrace(sc.PTRACE_DETACH, tid, 0, sig)
            return True
        except OSError:
            pass
        if _state(tid) in "ZX":  # a zombie leader whose threads live on: no stop will come
            return True
        # gone, or not traced by us: done
        return not _interrupt_once(tid, interrupted)

    def _reap(self, pids: set[int]) -> None:
        """Wait until every thread of these killed processes has exited. A
        killed tracee still stops at PTRACE_EVENT_EXIT, each thread on its own,
        and the leader's exit comes only after the others': each such stop is
        resumed, or the process would sit in it for as long as we live."""
        for pid in pids:
            tids = _tids(pid) | {x.tid for x in self.threads.values() if x.proc.pid == pid}
            for tid in [*sorted(tids - {pid}), pid]:
                while True:
                    try:
                        _, status = os.waitpid(tid, sc.WALL)
                    except ChildProcessError:
                        break
                    if not os.WIFSTOPPED(status):
                        for target in self.targets:
                            if target.pid == tid:
                                target.status = status
                        break
                    try:
                        sc.ptrace(sc.PTRACE_CONT, tid, 0, 0)
                    except OSError:
                        pass  # gone meanwhile: its exit status comes next
        for tid in [x.tid for x in self.threads.values() if x.proc.pid in pids]:
            self.threads.pop(tid, None)


def _traced_by(tracer: int) -> dict[int, int]:
    """Every task whose tracer is the thread `tracer` (its TracerPid): tid -> tgid."""
    out: dict[int, int] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/status", "rb") as f:
                    text = f.read()
            except OSError:
                continue
            at = text.find(b"\nTracerPid:")
            if at >= 0 and int(text[at + 11 : text.index(b"\n", at + 1)]) == tracer:
                out[int(tid)] = int(pid)
    return out


def _take(tid: int) -> None:
    """Consume tid's pending wait status (step() only looks at stops)."""
    try:
        os.waitpid(tid, sc.WALL | sc.WNOTHREAD | os.WNOHANG)
    except ChildProcessError:
        pass


def _tracer_of(tid: int) -> int:
    """The TracerPid of tid (0: not traced, or gone)."""
    try:
        with open(f"/proc/{tid}/status", "rb") as f:
            text = f.read()
    except OSError:
        return 0
    at = text.find(b"\nTracerPid:")
    return int(text[at + 11 : text.index(b"\n", at + 1)]) if at >= 0 else 0


def _interrupt_once(tid: int, interrupted: set[int]) -> bool:
    """PTRACE_INTERRUPT tid unless done before (interrupted records it);
    False if tid is gone or not traced by us."""
    if tid in interrupted:
        return True
    try:
        sc.ptrace(sc.PTRACE_INTERRUPT, tid)
    except OSError:
        return False
    interrupted.add(tid)
    return True


def _state(tid: int) -> str:
    """tid's state letter (R, S, D, t, Z...); "X" once it is gone."""
    try:
        with open(f"/proc/{tid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError):
        return "X"


def _read_exactly(fd: int, n: int) -> bytes | None:
    """n bytes from fd, or None at EOF before them."""
    data = b""
    while len(data) < n:
        part = os.read(fd, n - len(data))
        if not part:
            return None
        data += part
    return data


def _sized(data: bytes) -> bytes:
    return len(data).to_bytes(8, "little") + data


def _read_sized(fd: int) -> bytes | None:
    head = _read_exactly(fd, 8)
    return _read_exactly(fd, int.from_bytes(head, "little")) if head else None


def _listen(code: bytes, gate: int, report: int) -> bool:
    """In the -c child: install the filter with a listener, and wait until
    the tracer has taken its copy (True); False if the kernel refused (the
    child then installs the plain filter). See Tracer._take_listener."""
    from pydtrace.engines.user.ptrace.seccomp import install_listener

    spare = os.open("/dev/null", os.O_RDONLY)  # the lowest free descriptor: the listener's
    os.close(spare)
    os.write(report, spare.to_bytes(4, "little", signed=True))
    try:
        fd = install_listener(code)
    except OSError as e:
        os.write(report, (-e.errno).to_bytes(4, "little", signed=True))
        return False
    # From here a traced call waits for the tracer's answer. The tracer may
    # have found the listener and closed its end before this write is let
    # through (EPIPE: SIGPIPE is still ignored here).
    try:
        os.write(report, fd.to_bytes(4, "little", signed=True))
    except OSError:
        pass
    if _read_exactly(gate, 1) is None:  # the tracer has its copy; ours closes at exec
        os._exit(127)  # the session ended meanwhile
    return True


class _Unlocked:
    """Releases a held lock for the length of a with block."""

    def __init__(self, lock: threading.Lock | None) -> None:
        self.lock = lock

    def __enter__(self) -> None:
        if self.lock is not None:
            self.lock.release()

    def __exit__(self, *exc: object) -> None:
        if self.lock is not None:
            self.lock.acquire()


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def _tids(pid: int) -> set[int]:
    """The threads of pid now (none once it is gone)."""
    try:
        return {int(x) for x in os.listdir(f"/proc/{pid}/task")}
    except OSError:
        return set()


def _grab_message(pid: int, e: OSError) -> str:
    msg = f"failed to grab pid {pid}: {e.strerror}"
    if e.errno == errno.EPERM:
        msg += (
            "\n(ptrace was refused: the process belongs to another user, or the"
            " kernel.yama.ptrace_scope sysctl or a container forbids attaching;"
            " run as that user or as root, or lower ptrace_scope)"
        )
    return msg
