"""ktrace on the eBPF engine: everything is recorded in the kernel.

Raw-tracepoint programs (bpf_programs.py) on sys_enter/sys_exit,
sched_process_fork/exit, signal_deliver and sched_switch check the `traced`
map of tgids and write finished trace-file records into one ring buffer; this
side appends those bytes to the file as they come. Nothing stops the traced
processes. A -c command is forked held before exec (engines/launch.py) and
put in `traced` as "held": its calls count from its execve on.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable

from pydtrace.ktrace import bpf_programs as P
from pydtrace.ktrace import bpf_records as R
from pydtrace.ktrace import calls as C
from pydtrace.ktrace import format as F
from pydtrace.ktrace.recording import (
    RecordError,
    RecordOptions,
    boot_to_realtime_ns,
    check_targets,
    start_record,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pydtrace.engines.signals import StopFlag

RING_BYTES = 32 << 20  # a busy process's 1/10 s (dd bs=1: 100 MB/s of records)
TRACED_MAX = 16384
SAVED_MAX = 16384
CALLS_MAX = 1024
FLUSH_EVERY = 0.2  # seconds a record may wait in the writer's buffer
HELD, TRACED = 2, 1


def _call_flags(arch: str | None = None) -> dict[int, int]:
    """Syscall number -> bpf_records CF_* flags."""
    from pydtrace.probes.syscalls import table

    out: dict[int, int] = {}
    for nr, idx in C.path_table(arch).items():
        out[nr] = out.get(nr, 0) | sum(1 << i for i in idx if i < 6)
    for nr, dc in C.data_table(arch).items():
        kind = (R.CF_IOV if dc.iov >= 0 else R.CF_MSG if dc.msg >= 0
                else R.CF_MMSG if dc.mmsg >= 0 else R.CF_BUF)  # fmt: skip
        out[nr] = out.get(nr, 0) | kind | (R.CF_WRITE if dc.write else 0)
    for nr, (path, _, _) in C.exec_table(arch).items():
        out[nr] = out.get(nr, 0) | R.CF_EXEC | (R.CF_EXECAT if path == 1 else 0)
    wv = table(arch).by_name.get("writev")
    if wv is not None:
        out[wv.nr] = out.get(wv.nr, 0) | R.CF_WRITEV
    return {k: v for k, v in out.items() if 0 <= k < CALLS_MAX}


def _struct_entries() -> dict[int, bytes]:
    """Syscall number -> its structs map value (the ptrace recorder's table)."""
    from pydtrace.ktrace.calls import STRUCT_CALLS
    from pydtrace.probes.syscalls import table

    by = table().by_name
    return {by[n].nr: P.struct_entry(*spec) for n, spec in STRUCT_CALLS.items()
            if n in by and by[n].nr < CALLS_MAX}  # fmt: skip


def _targets(opts: RecordOptions) -> list[int]:
    """The pids of -p, or the members of -g's group; checked to exist."""
    pids = list(opts.pids)
    if opts.pgid is not None and not pids:
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    if os.getpgid(int(name)) == opts.pgid:
                        pids.append(int(name))
                except OSError:
                    pass
        if not pids:
            raise RecordError(f"pgid {opts.pgid}: No such process")
    check_targets(pids)
    return pids


def _descendants(pids: list[int]) -> list[int]:
    """Every current descendant of pids (ktrace -d), from /proc's ppid fields."""
    parent: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    parent[int(name)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, todo = set(pids), list(pids)
    while todo:
        p = todo.pop()
        for child, pp in parent.items():
            if pp == p and child not in found:
                found.add(child)
                todo.append(child)
    return sorted(found - set(pids))


class Session:
    """The kernel objects of one recording; close() releases all of them."""

    def __init__(self) -> None:
        self.maps: dict[str, Any] = {}
        self.progs: list[int] = []
        self.attachments: list[Any] = []
        self.ring: Any = None

    def create_maps(self) -> None:
        from pydtrace.engines.ebpf.bpf import MapType
        from pydtrace.engines.ebpf.maps import Map, ringbuf_map

        self.maps["traced"] = Map.create(MapType.HASH, 4, 4, TRACED_MAX, name="kt_traced")
        self.maps["saved"] = Map.create(MapType.HASH, 4, R.ARGS_SIZE, SAVED_MAX, name="kt_saved")
        self.maps["calls"] = Map.create(MapType.ARRAY, 4, 8, CALLS_MAX, name="kt_calls")
        self.maps["structs"] = Map.create(MapType.ARRAY, 4, 32, CALLS_MAX, name="kt_structs")
        self.maps["scratch"] = Map.create(MapType.PERCPU_ARRAY, 4, R.SCRATCH_SIZE, 1,
                                          name="kt_scratch")  # fmt: skip
        self.maps["ring"] = ringbuf_map(RING_BYTES, "kt_ring")

    def load(self, name: str, asm: Any) -> int:
        from pydtrace.engines.ebpf.bpf import ProgType, prog_load
        from pydtrace.engines.ebpf.insn import encode

        fds = {k: m.fd for k, m in self.maps.items()}
        fd = prog_load(ProgType.RAW_TRACEPOINT, encode(asm.resolve(), fds), name=name)
        self.progs.append(fd)
        return fd

    def attach(self, fd: int, tracepoint: str) -> None:
        from pydtrace.engines.ebpf.perf import attach_raw_tracepoint

        self.attachments.append(attach_raw_tracepoint(fd, tracepoint))

    def close(self) -> None:
        from pydtrace.engines.ebpf.bpf import close_fd

        for a in self.attachments:
            a.close()
        self.attachments.clear()
        if self.ring is not None:
            self.ring.close()
            self.ring = None
        for fd in self.progs:
            close_fd(fd)
        self.progs.clear()
        for m in self.maps.values():
            m.close()
        self.maps.clear()


def _check_kernel() -> None:
    from pydtrace.engines.ebpf.features import can_use_bpf, has_ringbuf

    ok, why = can_use_bpf()
    if not ok:
        raise RecordError(f"the ebpf engine cannot run here: {why}")
    if not has_ringbuf():
        raise RecordError("the ebpf engine needs BPF ring buffers (Linux 5.8)")


def _build(s: Session, opts: RecordOptions) -> None:
    from pydtrace.probes.syscalls import table

    o = P.offsets()
    boot = boot_to_realtime_ns()
    pts = opts.points
    nr_exec = tuple(sorted(C.exec_table()))
    s.attach(s.load("kt_enter", P.sys_enter(o, boot, pts, nr_exec)), "sys_enter")
    if any(c in pts for c in "cinut"):
        s.attach(s.load("kt_exit", P.sys_exit(o, boot, pts, opts.maxdata)), "sys_exit")
    s.attach(s.load("kt_fork", P.fork(o, boot, pts, opts.inherit)), "sched_process_fork")
    s.attach(s.load("kt_pexit", P.exit_(o, boot, pts)), "sched_process_exit")
    if "s" in pts:
        s.attach(s.load("kt_psig", P.signal_deliver(o, boot)), "signal_deliver")
    if "w" in pts:
        s.attach(s.load("kt_csw", P.sched_switch(o, boot)), "sched_switch")
    del table


def record(
    opts: RecordOptions,
    writer: F.Writer,
    stop: StopFlag,
    ready: Callable[[], None] | None = None,
) -> int:
    """Record with eBPF until the traced processes are gone or `stop` is set."""
    from pydtrace.engines.ebpf.bpf import BPFError
    from pydtrace.engines.ebpf.ringbuf import RingBuffer
    from pydtrace.engines.launch import LaunchError, Targets
    from pydtrace.symbols.btf import BTFError

    _check_kernel()
    writer.on_error = stop.set  # a file that cannot be written ends the recording
    targets = Targets()
    s = Session()
    main = threading.current_thread() is threading.main_thread()
    old: dict[int, Any] = {}
    try:
        try:
            if opts.command:
                seed = {targets.spawn(opts.command): HELD}
            else:
                pids = _targets(opts)
                for p in pids:
                    targets.grab(p)
                seed = dict.fromkeys(pids, TRACED)
                if opts.descend:
                    seed.update(dict.fromkeys(_descendants(pids), TRACED))
        except LaunchError as e:
            raise RecordError(_launch_message(e, opts)) from None
        try:
            s.create_maps()
            calls = s.maps["calls"]
            for nr, flags in _call_flags().items():
                calls.update(nr, flags.to_bytes(8, "little"))
            if opts.wants("t"):
                for nr, entry in _struct_entries().items():
                    s.maps["structs"].update(nr, entry)
            for pid, state in seed.items():
                s.maps["traced"].update(pid, state.to_bytes(4, "little"))
            _build(s, opts)
            s.ring = RingBuffer(s.maps["ring"].fd, s.maps["ring"].max_entries)
        except (BPFError, BTFError, OSError) as e:
            raise RecordError(f"cannot start the ebpf recorder: {e}") from None
        writer.write(start_record(opts))
        if main:

            def on_signal(signum: int, frame: Any) -> None:
                if signum == signal.SIGINT and opts.command:
                    return  # ^C is the command's; we record what it does with it
                stop.set()

            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                old[sig] = signal.signal(sig, on_signal)
        try:
            targets.release()
        except LaunchError as e:
            raise RecordError(_launch_message(e, opts)) from None
        if ready is not None:
            ready()
        _loop(s, targets, writer, stop)
        unseen = _close_drops(s, writer)
        if unseen:
            _say(f"{unseen} switch-in{'s' if unseen > 1 else ''} the kernel did not report: "
                 f"{'their' if unseen > 1 else 'its'} CSW resume record{'s are' if unseen > 1 else ' is'} missing")  # fmt: skip
        t = targets.targets[0] if opts.command and targets.targets else None
        if t is not None and t.status is not None:
            st = t.status
            return os.WEXITSTATUS(st) if os.WIFEXITED(st) else 128 + os.WTERMSIG(st)
        return 0
    finally:
        s.close()
        _finish(targets)
        writer.flush()
        for sig, h in old.items():
            signal.signal(sig, h)


def _loop(s: Session, targets: Any, writer: F.Writer, stop: StopFlag) -> None:
    """Copy records to the file until every traced process has gone (or stop)."""
    ring, traced = s.ring, s.maps["traced"]
    buf = writer.buf
    limit = writer.limit

    def take(_: Any = None) -> None:
        while ring.copy_into(buf):
            if len(buf) >= limit:
                writer.flush()

    poller = select.poll()
    poller.register(ring.fileno(), select.POLLIN)
    watched = {}
    for fd in targets.fds():
        poller.register(fd, select.POLLIN)
        watched[fd] = True
    next_check = next_flush = time.monotonic() + 0.5
    while not stop.is_set():
        try:
            events = poller.poll(200 if watched else 100)
        except InterruptedError:
            events = []
        for fd, _ in events:
            if fd in watched and targets.gone(fd):
                poller.unregister(fd)
                del watched[fd]
        take()
        now = time.monotonic()
        if buf and (not events or now >= next_flush):
            writer.flush()  # kdump -l follows the file: never sit on records for long
            next_flush = now + FLUSH_EVERY
        if not watched:
            if now >= next_check or not events:
                next_check = now + 0.5
                if not _alive(traced):
                    break
    take()
    writer.flush()


def _launch_message(e: Exception, opts: RecordOptions) -> str:
    """A launch error in ktrace's words (OpenBSD's, as the ptrace recorder's)."""
    msg = str(e).replace("failed to grab pid", "pid")
    name = opts.command[0] if opts.command else ""
    head = f"failed to execute {name}: "
    if name and msg.startswith(head):
        msg = f"exec of '{name}' failed: {msg[len(head) :]}"
    return msg


def _say(line: str) -> None:
    """A note on stderr at the end (a background recorder's may be closed)."""
    try:
        sys.stderr.write(f"ktrace: {line}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


def _close_drops(s: Session, writer: F.Writer) -> int:
    """Detach, copy what is left, then report the drops no record carried:
    one LOST record per CPU whose count is still set (its last records were
    dropped, e.g. a full ring when the process exited). Returns how many
    switch-ins of traced threads the kernel did not report (bpf_records.CSW_UNSEEN)."""
    for a in s.attachments:
        a.close()
    s.attachments.clear()
    while s.ring.copy_into(writer.buf):
        writer.flush()
    sec, nsec = divmod(time.time_ns(), 1_000_000_000)
    unseen = 0
    for cpu, value in enumerate(s.maps["scratch"].lookup(0) or []):
        lost = int.from_bytes(value[R.DROPS : R.DROPS + 8], "little")
        if lost:
            writer.write(F.Record(F.LOST, -1, -1, b"", sec, nsec, "ktrace", cpu, lost))
        unseen += int.from_bytes(value[R.CSW_UNSEEN : R.CSW_UNSEEN + 8], "little")
    writer.flush()
    return unseen


def _alive(traced: Any) -> bool:
    """Is any traced tgid still running? Drops entries whose process vanished
    without our exit program seeing it."""
    keys = traced.keys()
    for k in keys:
        pid = int.from_bytes(k, "little")
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            traced.delete(k)
        except OSError as e:
            if e.errno != errno.EPERM:
                traced.delete(k)
    return bool(traced.keys())


def _finish(targets: Any) -> None:
    """Close the targets' fds; a -c command still running is left to run (it
    is never killed or stopped by the recorder), a held one gives up."""
    for t in targets.targets:
        if t.created and not t.ended and t.gate < 0:
            t.ended = True  # released and running: not ours to kill
    targets.finish()
