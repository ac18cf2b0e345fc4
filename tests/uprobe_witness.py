"""What the uprobe-leak test (test_uprobe_leaks.py) and its benchmark
(benchmarks/uprobe_leaks.py) share: the target, the killing wrapper, the
program, private copies of libc and the witnesses of uprobes the kernel holds
(see the test's docstring). Callers put src/ on sys.path first."""

from __future__ import annotations

import os
import shutil
import struct
import time
from pathlib import Path

LOOP = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
int main(void) {
    char buf[32];
    for (volatile size_t n = 0;; n += strlen(buf)) {
        snprintf(buf, sizeof buf, "%d", (int)getpid());
        free(malloc(100));
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
}
"""

# pydtrace, with a SIGKILL sent to it `delay` seconds after a uprobe link
# starts being created or closed (UPROBE_KILL=attach:DELAY or close:DELAY),
# wherever that happens: the moments a kill left uprobes in the kernel; or
# (UPROBE_KILL=answer:0) dead before the agent attaches its last job, so the
# agent answers to a closed pipe
KILLING = """
import os, runpy, signal, sys, threading, time
PID = os.getpid()
phase, delay = os.environ["UPROBE_KILL"].split(":")
from pydtrace.engines.ebpf import perf
def kill_soon():
    if os.getpid() == PID:
        # pydtrace at work itself: SIGALRM, fatal by default (the kernel makes it
        # a SIGKILL of every thread), lands while the caller is in the kernel
        signal.setitimer(signal.ITIMER_REAL, max(float(delay), 1e-6))
        return
    def kill():  # another process at work: pydtrace killed meanwhile
        time.sleep(float(delay))
        os.kill(PID, 9)
    threading.Thread(target=kill, daemon=True).start()
if phase == "answer":
    from pydtrace.engines.ebpf import attach as _attach, uprobe_agent
    real_serve = uprobe_agent._serve
    def serve(jobs, progs, ctl, res):
        n, real = [0], dict(_attach.OPENERS)
        def opener(kind):
            def open_(fd, a):
                n[0] += 1
                if n[0] == len(jobs):
                    os.kill(PID, 9)
                    while os.path.exists(f"/proc/{PID}/fd/0"):  # a zombie has no fds
                        time.sleep(0.01)
                return real[kind](fd, a)
            return open_
        for kind in real:
            _attach.OPENERS[kind] = opener(kind)
        return real_serve(jobs, progs, ctl, res)
    uprobe_agent._serve = serve
elif phase == "attach":
    real_attach = perf.attach_uprobe_multi
    def attach(*a, **k):
        if len(a[2]) > 5000:  # the largest group: its offsets take longest to register
            kill_soon()
        return real_attach(*a, **k)
    perf.attach_uprobe_multi = attach
else:
    real_close = perf.Attachment.close
    def close(self):
        if self.what.startswith("uprobe ") and self.fd >= 0:
            kill_soon()
        real_close(self)
    perf.Attachment.close = close
sys.argv = ["pydtrace"] + sys.argv[1:]
runpy.run_module("pydtrace", run_name="__main__")
"""

# entry, return and instruction probes (~50,000 uprobes: a uprobe_multi link
# each) on libc's functions a-m; "on" once the target runs with them
SCRIPT = ('pid$target:libc.so.6:[a-m]*: { @[probename] = count(); }'
          ' pid$target:libc.so.6:malloc:entry /!on/ { on = 1; printf("on\\n"); }'
          ' tick-100ms /on/ { exit(0); }')  # fmt: skip


LIBC = Path("/lib/x86_64-linux-gnu/libc.so.6")


def clean_copy(d: Path, name: str) -> Path:
    """d/name, a copy of libc on which the kernel holds no uprobe. A uprobe
    does not keep its file's inode: one left behind on a file since deleted
    sits on whatever inode the kernel puts in the same place next (a machine
    where uprobes were left on deleted copies hands them to some new files).
    A copy that got some is kept aside until d goes, so the next lands
    elsewhere."""
    offsets = probed_offsets(LIBC)
    for n in range(10):
        path = d / name
        shutil.copy(LIBC, path)
        if not uprobes_held(path, offsets):
            return path
        path.rename(d / f"{name}.taken{n}")
    raise RuntimeError("new files keep inheriting uprobes the kernel kept for deleted ones: reboot")


def probed_offsets(path: Path) -> list[int]:
    """The file offsets SCRIPT can probe: every function's first instruction
    (entry and return probes sit there), every instruction of those a-m."""
    from fnmatch import fnmatchcase

    from pydtrace.symbols import x86
    from pydtrace.symbols.elf import ElfFile

    elf = ElfFile(str(path))
    out = set()
    for s in elf.functions():
        if elf.in_code(s.addr):
            code = elf.code(s.addr, s.size) if fnmatchcase(s.name, "[a-m]*") else b""
            out.update(elf.addr_to_offset(s.addr + i) for i in [0, *x86.boundaries(code)])
    return sorted(out)


def uprobes_held(path: Path, offsets: list[int]) -> bool:
    """Does the kernel hold a uprobe at any of offsets of path? (The link is for
    this process, which does not map path: nothing gets installed anywhere.)"""
    from pydtrace.engines.ebpf import bpf

    ret0 = struct.pack("<BBhiBBhi", 0xB7, 0, 0, 0, 0x95, 0, 0, 0)
    prog = bpf.prog_load(bpf.ProgType.KPROBE, ret0, name="t_held",
                         expected_attach_type=bpf.AttachType.TRACE_UPROBE_MULTI)  # fmt: skip
    try:
        fd = bpf.uprobe_multi_link(prog, str(path), offsets, False, os.getpid(), [2] * len(offsets))
    except bpf.BPFError as e:
        assert e.errno == 22, e  # EINVAL: a uprobe without a ref_ctr_offset is there
        return True
    finally:
        bpf.close_fd(prog)
    bpf.close_fd(fd)
    return False


def mmap_cost(path: Path, n: int = 3000) -> float:
    """CPU seconds of n mmap(PROT_READ|PROT_EXEC)+munmap of the whole file."""
    import mmap

    fd = os.open(path, os.O_RDONLY)
    try:
        t = time.process_time()
        for _ in range(n):
            mmap.mmap(fd, 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_EXEC).close()
        return time.process_time() - t
    finally:
        os.close(fd)


def kernel_log_leaks(fd: int) -> list[str]:
    """The kernel's 'leaking uprobe' lines logged since fd (/dev/kmsg, at its end) was opened."""
    out = []
    while True:
        try:
            rec = os.read(fd, 8192).decode(errors="replace")
        except BlockingIOError:
            return out
        except BrokenPipeError:
            continue  # records overwritten meanwhile
        if "leaking uprobe" in rec:
            out.append(rec.split(";", 1)[-1].strip())


def agents(token: str) -> list[int]:
    """The uprobe agents of the runs whose environment holds token."""
    from pydtrace.engines.ebpf.uprobe_agent import NAME

    out = []
    for name in os.listdir("/proc"):
        try:
            comm = Path(f"/proc/{name}/comm").read_text().strip()
            if comm == NAME and token.encode() in Path(f"/proc/{name}/environ").read_bytes():
                out.append(int(name))
        except (OSError, ValueError):
            continue  # not a process, or gone meanwhile
    return out
