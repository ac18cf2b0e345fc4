"""The kernel as we found it: however a pid-provider run ends, no uprobe stays
registered (engines/ebpf/uprobe_agent.py; docs/internals/pid-provider.md, "Uprobes
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
from uprobe_witness import (
    KILLING,
    LIBC,
    LOOP,
    SCRIPT,
    agents,
    clean_copy,
    kernel_log_leaks,
    mmap_cost,
    probed_offsets,
    uprobes_held,
)


@pytest.fixture(autouse=True)
def _kernel() -> None:
    need(bpf_maps_ok(), "no BPF maps (needs root)")
    from pydtrace.engines.ebpf.features import has_uprobe_multi

    need(has_uprobe_multi(), "no uprobe_multi links (Linux 6.6)")


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


def test_an_agent_answering_a_dead_run_removes_its_uprobes_before_it_exits(stress: Stress) -> None:
    """pydtrace killed as its agent starts the last job: the agent's answer
    meets a closed pipe. It used to die of that EPIPE and leave its links to
    its exit, which closes files after /proc stops showing the environment
    agents() looks for: for a second or more no agent showed, yet every
    uprobe was still there. Now the agent closes them itself, so none is left
    once no agent shows, with the target still running."""
    p = stress.start(0, "answer:0")
    assert p.wait(60) == -signal.SIGKILL
    end = time.monotonic() + 60
    while agents(stress.token) and time.monotonic() < end:
        time.sleep(0.02)
    assert not agents(stress.token)
    assert not uprobes_held(stress.lib, stress.offsets)
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
