"""The kernel as we found it: however a pid-provider run ends, no uprobe stays
registered (engines/ebpf/uprobe_agent.py; docs/pid-provider.md, "Uprobes
left in the kernel").

Linux keeps a uprobe for good when the task removing it has a SIGKILL
pending, which happens when pydtrace is killed while it registers uprobes or
closes their links. Everything here runs on a private copy of libc (and of
ld.so, which loads it into the targets), so that a failure costs only that
copy's inode, never the machine's libc. Witnesses, both on that copy:
- exact: registering a uprobe with a ref_ctr_offset where the kernel still
  holds one without fails with EINVAL (alloc_uprobe's ref_ctr_offset
  mismatch), so one uprobe_multi link over every offset the runs probe,
  for a process that does not map the file (nothing is installed), tells
  whether any is left;
- the symptom: the CPU time of mmap()ing the copy, against a fresh copy
  (uprobe_mmap walks the uprobes left in the mapped range).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ROOT, bpf_maps_ok, compile_c, need
from pydtrace.engines.ebpf import uprobe_agent

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
# wherever that happens: the moments a kill left uprobes in the kernel
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
if phase == "attach":
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


@pytest.fixture(autouse=True)
def _kernel() -> None:
    need(bpf_maps_ok(), "no BPF maps (needs root)")
    from pydtrace.engines.ebpf.features import has_uprobe_multi

    need(has_uprobe_multi(), "no uprobe_multi links (Linux 6.6)")


LIBC = Path("/lib/x86_64-linux-gnu/libc.so.6")


@pytest.fixture
def private() -> Iterator[Path]:
    """A directory of our own under /tmp holding copies of libc (clean_copy)
    and ld.so, removed at the end."""
    ld = Path("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    need(LIBC.exists() and ld.exists(), "no x86-64 glibc here")
    d = Path(tempfile.mkdtemp(prefix="pydtrace-uprobes-"))
    try:
        clean_copy(d, "libc.so.6")
        shutil.copy(ld, d / "ld-linux-x86-64.so.2")
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


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
    pytest.fail("new files keep inheriting uprobes the kernel kept for deleted ones: reboot")


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


def test_the_witness_sees_a_registered_uprobe(private: Path) -> None:
    """uprobes_held answers True while a uprobe is registered there (the
    witness works on this kernel), False once its link is closed."""
    from pydtrace.engines.ebpf import bpf

    lib = private / "libc.so.6"
    offsets = probed_offsets(lib)
    assert len(offsets) > 1000
    assert not uprobes_held(lib, offsets)
    ret0 = struct.pack("<BBhiBBhi", 0xB7, 0, 0, 0, 0x95, 0, 0, 0)
    prog = bpf.prog_load(bpf.ProgType.KPROBE, ret0, name="t_one",
                         expected_attach_type=bpf.AttachType.TRACE_UPROBE_MULTI)  # fmt: skip
    try:
        link = bpf.uprobe_multi_link(prog, str(lib), [offsets[500]], False, os.getpid(), None)
    finally:
        bpf.close_fd(prog)
    try:
        assert uprobes_held(lib, offsets)
    finally:
        bpf.close_fd(link)
    assert not uprobes_held(lib, offsets)


def agents(token: str) -> list[int]:
    """The uprobe agents of the runs whose environment holds token."""
    out = []
    for name in os.listdir("/proc"):
        try:
            comm = Path(f"/proc/{name}/comm").read_text().strip()
            if (
                comm == uprobe_agent.NAME
                and token.encode() in Path(f"/proc/{name}/environ").read_bytes()
            ):
                out.append(int(name))
        except (OSError, ValueError):
            continue  # not a process, or gone meanwhile
    return out


class Stress:
    """Two targets running the private libc, and pydtrace runs on them."""

    def __init__(self, private: Path, exe: str) -> None:
        self.private, self.lib = private, private / "libc.so.6"
        self.offsets = probed_offsets(self.lib)
        self.token = f"{os.getpid()}.{time.monotonic_ns()}"  # marks our runs' agents
        self.env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), UPROBE_LEAK_TEST=self.token)
        self.runs: list[subprocess.Popen] = []
        self.kmsg = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
        os.lseek(self.kmsg, 0, os.SEEK_END)
        ld = str(private / "ld-linux-x86-64.so.2")
        self.targets = [subprocess.Popen([ld, "--library-path", str(private), exe])
                        for _ in range(2)]  # fmt: skip
        time.sleep(0.2)
        for t in self.targets:  # never the machine's libc: only the copy, or no run at all
            maps = Path(f"/proc/{t.pid}/maps").read_text()
            assert str(self.lib) in maps and " /lib/x86_64-linux-gnu/libc.so.6" not in maps
        assert not uprobes_held(self.lib, self.offsets)

    def start(self, n: int, kill: str = "") -> subprocess.Popen:
        """pydtrace -p on target n; kill: see KILLING."""
        cmd, env = [sys.executable, "-m", "pydtrace"], self.env
        if kill:
            cmd, env = [sys.executable, "-c", KILLING], dict(self.env, UPROBE_KILL=kill)
        p = subprocess.Popen([*cmd, "-q", "-p", str(self.targets[n].pid), "-n", SCRIPT],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)  # fmt: skip
        self.runs.append(p)
        return p

    def killed_inside(self, n: int, kill: str) -> None:
        p = self.start(n, kill)
        assert p.wait(60) in (-signal.SIGKILL, -signal.SIGALRM), kill

    def stop(self) -> None:
        for p in self.runs + self.targets:
            if p.poll() is None:
                p.kill()
            p.wait(60)
        self.runs = self.targets = []

    def check(self) -> None:
        """Once the targets are gone (no return instance holds a uprobe) and
        the runs' agents have finished (a killed run's agent finishes
        registering, then removes everything), nothing is left."""
        self.stop()
        end = time.monotonic() + 60
        while agents(self.token) and time.monotonic() < end:
            time.sleep(0.2)
        assert not agents(self.token)
        held = uprobes_held(self.lib, self.offsets)
        assert not held, "\n".join(kernel_log_leaks(self.kmsg)[:5])
        fresh = clean_copy(self.private, "fresh.so")
        # removed uprobes leave the tree by a work item each: a big detach's
        # take a second or two, during which mmap still walks them
        end = time.monotonic() + 10
        while (cost := mmap_cost(self.lib)) > 2 * (base := mmap_cost(fresh)) + 0.005:
            if time.monotonic() > end:
                break
            time.sleep(0.5)
        assert cost < 2 * base + 0.005, (cost, base)

    def close(self) -> None:
        self.stop()
        os.close(self.kmsg)


@pytest.fixture
def stress(private: Path, tmp_path: Path) -> Iterator[Stress]:
    s = Stress(private, compile_c(tmp_path, "loop", LOOP))
    try:
        yield s
    finally:
        s.close()


def test_killed_inside_the_kernel_leaves_no_uprobe(stress: Stress) -> None:
    """SIGKILL to pydtrace while the kernel registers, then while it removes,
    the 72,000 uprobes of SCRIPT's largest link: when pydtrace did that
    itself, the kill landed on the kernel's removal path, which then kept
    every uprobe it had not removed yet."""
    stress.killed_inside(0, "attach:0.05")
    stress.killed_inside(1, "close:0.01")
    stress.check()


@pytest.mark.slow
def test_killed_runs_leave_no_uprobe(stress: Stress) -> None:
    """More of the same at other moments, SIGINT then SIGKILL (during the
    detach), and two runs at once killed at random moments of their start."""
    for n, kill in enumerate(["attach:0.12", "close:0.001", "close:0.05"]):
        stress.killed_inside(n % 2, kill)
    for delay in (0.0, 0.02):
        p = stress.start(0)
        assert p.stdout is not None and p.stdout.readline() == b"on\n"
        p.send_signal(signal.SIGINT)
        time.sleep(delay)
        p.kill()
        p.wait(60)
    pair = [stress.start(n) for n in range(2)]
    time.sleep(random.Random(17).uniform(0.5, 2.0))
    for p in pair:
        p.kill()
        p.wait(60)
    stress.check()
