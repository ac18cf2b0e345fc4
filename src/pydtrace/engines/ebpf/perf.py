"""perf_event_open through ctypes, and attaching BPF programs to perf events.

A tracepoint program hangs off one perf event of type TRACEPOINT opened for every task on CPU 0
(it then runs on every CPU); profile-N/tick-N programs hang off SOFTWARE/CPU_CLOCK events, one
per CPU. Closing the perf event fd detaches the program.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import fcntl
import os
import struct

# perf_event_attr.type
PERF_TYPE_HARDWARE = 0
PERF_TYPE_SOFTWARE = 1
PERF_TYPE_TRACEPOINT = 2
# software configs
PERF_COUNT_SW_CPU_CLOCK = 0
PERF_COUNT_SW_TASK_CLOCK = 1
PERF_COUNT_SW_BPF_OUTPUT = 10
# sample_type
PERF_SAMPLE_RAW = 0x400
# flag bits of the u64 at offset 40
ATTR_DISABLED = 1 << 0
ATTR_INHERIT = 1 << 1
ATTR_FREQ = 1 << 10
ATTR_WATERMARK = 1 << 14
# perf_event_open flags
PERF_FLAG_FD_CLOEXEC = 8
# ioctls
PERF_EVENT_IOC_ENABLE = 0x2400
PERF_EVENT_IOC_DISABLE = 0x2401
PERF_EVENT_IOC_SET_BPF = 0x40042408

ATTR_SIZE = 112  # PERF_ATTR_SIZE_VER5
_NR = {"x86_64": 298, "amd64": 298, "aarch64": 241, "arm64": 241}


class PerfError(OSError):
    """perf_event_open or an attach ioctl failed; str() is a sentence naming what and why."""

    def __init__(self, err: int, message: str):
        super().__init__(err, os.strerror(err))
        self.message = message

    def __str__(self) -> str:
        return self.message


def _hint(err: int) -> str:
    if err in (_errno.EACCES, _errno.EPERM):
        return " (needs root, or CAP_PERFMON; see kernel.perf_event_paranoid)"
    if err == _errno.ENODEV:
        return " (CPU offline or event not supported)"
    return ""


def make_attr(
    type_: int,
    config: int,
    sample_period: int = 0,
    sample_type: int = 0,
    flags: int = 0,
    wakeup_events: int = 0,
    config1: int = 0,
    config2: int = 0,
) -> ctypes.Array:
    """A perf_event_attr (112 bytes) with the fields pydtrace uses."""
    attr = ctypes.create_string_buffer(ATTR_SIZE)
    struct.pack_into(
        "<IIQQQQQIIQQ",
        attr,
        0,
        type_,
        ATTR_SIZE,
        config,
        sample_period,
        sample_type,
        0,
        flags,
        wakeup_events,
        0,
        config1,
        config2,
    )
    return attr


def perf_event_open(
    attr: ctypes.Array, pid: int, cpu: int, group_fd: int = -1, what: str = "perf event"
) -> int:
    """perf_event_open(2) with close-on-exec; returns the fd or raises PerfError."""
    nr = _NR.get(os.uname().machine)
    if nr is None:
        raise PerfError(
            _errno.ENOSYS, f"perf_event_open: unsupported architecture {os.uname().machine}"
        )
    from pydtrace.engines.ebpf.bpf import libc_syscall

    c_long = ctypes.c_long
    fd = libc_syscall()(
        c_long(nr), attr, c_long(pid), c_long(cpu), c_long(group_fd), c_long(PERF_FLAG_FD_CLOEXEC)
    )
    if fd < 0:
        err = ctypes.get_errno()
        raise PerfError(err, f"cannot open {what}: {os.strerror(err)}{_hint(err)}")
    return fd


class Attachment:
    """One perf event fd carrying a BPF program; close() detaches, exactly once."""

    def __init__(self, fd: int, what: str):
        self.fd = fd
        self.what = what

    def enable(self) -> None:
        fcntl.ioctl(self.fd, PERF_EVENT_IOC_ENABLE, 0)

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass

    @property
    def closed(self) -> bool:
        return self.fd < 0

    def __enter__(self) -> Attachment:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Attachment({self.what}, fd={self.fd})"


class Attachments:
    """A group of attachments closed together on every exit path (context manager)."""

    def __init__(self) -> None:
        self.items: list[Attachment] = []

    def add(self, a: Attachment | list[Attachment]) -> None:
        if isinstance(a, list):
            self.items.extend(a)
        else:
            self.items.append(a)

    def close(self) -> None:
        while self.items:
            self.items.pop().close()

    def __len__(self) -> int:
        return len(self.items)

    def __enter__(self) -> Attachments:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def attach_bpf(fd: int, prog_fd: int, what: str) -> Attachment:
    """SET_BPF then ENABLE on an open perf event fd; the fd is closed if either fails."""
    a = Attachment(fd, what)
    try:
        fcntl.ioctl(fd, PERF_EVENT_IOC_SET_BPF, prog_fd)
        a.enable()
    except OSError as e:
        a.close()
        why = os.strerror(e.errno or 0)
        if e.errno == _errno.EINVAL:
            why += " (program type does not fit this event)"
        elif e.errno == _errno.EEXIST:
            why += " (a program is already attached)"
        raise PerfError(e.errno or 0, f"cannot attach BPF program to {what}: {why}") from None
    return a


def attach_tracepoint(prog_fd: int, group: str, event: str) -> Attachment:
    """Run a TRACEPOINT (or KPROBE-typed) program on every hit of tracepoint group:event."""
    from pydtrace.probes import tracefs

    what = f"tracepoint {group}:{event}"
    ident = tracefs.event_id(group, event)  # NoSuchEvent names the tracepoint
    attr = make_attr(PERF_TYPE_TRACEPOINT, ident, sample_period=1, wakeup_events=1)
    try:
        fd = perf_event_open(attr, -1, 0, what=what)
    except PerfError as e:
        if e.errno == _errno.ENOENT:
            e.message = f"no tracepoint {group}:{event} in this kernel"
        raise
    return attach_bpf(fd, prog_fd, what)


def attach_raw_tracepoint(prog_fd: int, name: str) -> Attachment:
    """Run a RAW_TRACEPOINT program on tracepoint `name` ("sys_enter"); BPFError names it."""
    from pydtrace.engines.ebpf.bpf import raw_tracepoint_open

    return Attachment(raw_tracepoint_open(name, prog_fd), f"raw tracepoint {name}")


def open_clock(prog_fd: int, period_ns: int, cpu: int) -> Attachment:
    """Run a PERF_EVENT program every period_ns of CPU time on `cpu` (profile-N, tick-N)."""
    what = f"cpu-clock event on CPU {cpu}"
    attr = make_attr(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CPU_CLOCK, sample_period=max(1, period_ns))
    fd = perf_event_open(attr, -1, cpu, what=what)
    return attach_bpf(fd, prog_fd, what)


def open_clocks(prog_fd: int, period_ns: int, cpus: list[int] | None = None) -> list[Attachment]:
    """open_clock on every CPU in cpus (default: every online CPU); all or none."""
    if cpus is None:
        from pydtrace.engines.ebpf.maps import online_cpus

        cpus = online_cpus()
    out: list[Attachment] = []
    try:
        for c in cpus:
            out.append(open_clock(prog_fd, period_ns, c))
    except BaseException:
        for a in out:
            a.close()
        raise
    return out


def close_without_waiting(items: list[Attachment]) -> None:
    """Close attachments without making this process wait for the kernel.

    The last perf event of a tracepoint waits, when it is freed, for an
    RCU-tasks-trace grace period (~70 ms per tracepoint on 6.x, one after the
    other): that was a fifth of a one-liner's run time. A short-lived orphan
    (a grandchild keeping only these fds and a pipe) holds them while our
    copies close at once, then exits on the pipe's EOF and pays it. The
    caller must have stopped the programs from doing anything first: they
    may run until the holder is gone. When no process can be forked, the fds
    are closed by a few threads at once."""
    for a in items:
        if not a.what.startswith("tracepoint "):  # only these wait in the kernel
            a.close()
    items = [a for a in items if not a.closed]
    if not items:
        return
    rd, wr = os.pipe()
    try:
        if _spawn_holder([a.fd for a in items], rd):
            for a in items:
                a.close()
            return
    finally:
        os.close(rd)
        os.close(wr)  # the holder's `read` ends: it exits holding the last references
    close_in_parallel(items, 4)


def close_in_parallel(items: list[Attachment], threads: int = 64) -> None:
    """Close items from up to `threads` threads (os.close lets go of the GIL):
    the grace periods that removing uprobes waits for (~0.1 s each) overlap.
    Every item is closed on return, with fewer threads (or none) when no
    more can be started."""
    if len(items) >= 2:
        import threading

        n = min(threads, len(items))
        started: list[threading.Thread] = []
        try:
            for k in range(n):
                w = threading.Thread(target=lambda part=items[k::n]: [a.close() for a in part])
                w.start()
                started.append(w)
        except RuntimeError:
            pass  # "can't start new thread": a limit on tasks or memory
        finally:
            for w in started:
                w.join()
    for a in items:  # the parts of threads that did not start (close() acts once)
        a.close()


def _spawn_holder(fds: list[int], rd: int) -> bool:
    """A grandchild (forked twice: no child of ours to reap) in a session of
    its own that keeps only fds and rd open (never our stdout: a reader of
    our output sees its end when we exit) until rd reads EOF; True when it
    runs. Plain system calls in the forks, never back into the caller: no
    shell to exec, no subprocess module to import."""
    try:
        pid = os.fork()
    except OSError:
        return False
    if pid == 0:
        code = 1  # no grandchild: the caller closes the fds itself
        try:
            low = 0  # closed before the grandchild is made: gone once we are reaped
            for fd in sorted({*fds, rd}):
                os.closerange(low, fd)
                low = fd + 1
            os.closerange(low, 1 << 20)
            os.setsid()  # Ctrl-C at the terminal is not for it
            if os.fork() == 0:
                while os.read(rd, 64):
                    pass
            code = 0
        finally:
            os._exit(code)
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:  # reaped elsewhere (a SIGCHLD handler): it ran
        return True
    return status == 0


def _uprobe_pmu() -> tuple[int, int]:
    """(perf type of the uprobe PMU, its retprobe config bit), from sysfs."""
    base = "/sys/bus/event_source/devices/uprobe"
    try:
        with open(f"{base}/type") as f:
            type_ = int(f.read())
        with open(f"{base}/format/retprobe") as f:
            bit = int(f.read().strip().split(":")[1])  # "config:0"
    except (OSError, ValueError, IndexError):
        raise PerfError(
            _errno.ENOENT, "this kernel has no uprobe PMU (CONFIG_UPROBE_EVENTS)"
        ) from None
    return type_, bit


def attach_uprobe(
    prog_fd: int,
    path: str,
    offset: int,
    retprobe: bool,
    pid: int,
    ref_ctr_offset: int = 0,
    multi: bool = False,
) -> Attachment:
    """Run a KPROBE-typed program at file offset `offset` of `path` in process pid
    (a uretprobe when retprobe): as a uprobe_multi link when multi (the program
    was loaded for one), else on the uprobe PMU. Either way the probe belongs to
    the fd: the kernel removes it when the fd's last reference closes (nothing
    in uprobe_events), unless the closing task has a SIGKILL pending: the engine
    opens these in uprobe_agent's process only. ref_ctr_offset: a USDT
    semaphore's file offset, counted up while attached."""
    what = f"uprobe {path}:{offset:#x}{' (return)' if retprobe else ''} in pid {pid}"
    if multi:
        refs = [ref_ctr_offset] if ref_ctr_offset else None
        return _uprobe_link(what, prog_fd, path, [offset], retprobe, pid, refs, None)
    type_, bit = _uprobe_pmu()
    cpath = ctypes.create_string_buffer(os.fsencode(path))
    config = (1 << bit if retprobe else 0) | (ref_ctr_offset << 32)
    attr = make_attr(type_, config, sample_period=1, wakeup_events=1,
                     config1=ctypes.addressof(cpath), config2=offset)  # fmt: skip
    try:
        fd = perf_event_open(attr, pid, -1, what=what)
    except PerfError as e:
        if e.errno in (_errno.ESRCH, _ENOTSUPP):
            e.message = _uprobe_refusal(e.errno, what, pid)
        raise
    return attach_bpf(fd, prog_fd, what)


def attach_uprobe_multi(
    prog_fd: int, path: str, offsets: list[int], retprobe: bool, pid: int, cookies: list[int]
) -> Attachment:
    """One uprobe_multi link for a program serving many probes of one file: the
    cookie at each offset tells the program which probe fired."""
    what = (f"uprobe {path}: {len(offsets)} offsets{' (return)' if retprobe else ''}"
            f" in pid {pid}")  # fmt: skip
    return _uprobe_link(what, prog_fd, path, offsets, retprobe, pid, None, cookies)


def _uprobe_link(what: str, prog_fd: int, path: str, offsets: list[int], retprobe: bool,
                 pid: int, refs: list[int] | None, cookies: list[int] | None) -> Attachment:  # fmt: skip
    """bpf.uprobe_multi_link as an Attachment; a refusal as PerfError."""
    from pydtrace.engines.ebpf.bpf import BPFError, uprobe_multi_link

    try:
        return Attachment(uprobe_multi_link(prog_fd, path, offsets, retprobe, pid, refs, cookies),
                          what)  # fmt: skip
    except BPFError as e:
        raise PerfError(e.errno, _uprobe_refusal(e.errno, what, pid)) from None


_ENOTSUPP = 524  # kernel-internal: what uprobes answer for an instruction they cannot step


def _uprobe_refusal(err: int, what: str, pid: int) -> str:
    if err == _errno.ESRCH:
        return f"cannot trace pid {pid}: No such process"
    if err == _ENOTSUPP:
        return f"cannot open {what}: the kernel's uprobes cannot trace that instruction"
    return f"cannot open {what}: {os.strerror(err)}{_hint(err)}"
