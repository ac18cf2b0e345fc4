"""Uprobes left in the kernel by killed pid-provider runs, scenario by scenario.

    python3 benchmarks/uprobe_leaks.py [--src DIR] [--load N] [--repeat R]

Each scenario runs pydtrace (from DIR, by default this tree's src: point it
at an older tree to compare) with entry and return probes on every function
of a PRIVATE copy of libc, loaded by a private copy of ld.so into two target
processes, and ends the runs its way. Then, once the targets are killed and
the runs' agents (uprobe-holder) have exited:

    held     the kernel still holds a uprobe at a function entry of the copy
             (a uprobe_multi link with a ref_ctr_offset there fails with
             EINVAL: alloc_uprobe's ref_ctr_offset mismatch)
    mmap     CPU us per mmap(PROT_EXEC)+munmap of the copy, and of a fresh copy
    log      "failed to unregister, leaking uprobe" lines the kernel logged

Nothing touches the machine's libc: a uprobe left on a copy pins only that
copy's inode (its files are removed at the end). --load N runs N busy loops
(nice 19) during the runs. Needs root, cc, Linux 6.6+ (uprobe_multi).
"""

from __future__ import annotations

import argparse
import mmap
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TREE = Path(__file__).resolve().parents[1]
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
# pydtrace with a SIGKILL to it DELAY s after a uprobe link starts being
# created or closed (UPROBE_KILL=attach:DELAY or close:DELAY), wherever that runs
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


class Scene:
    def __init__(self, src: str, exe: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pydtrace-uprobes-"))
        shutil.copy("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", self.dir)
        self.lib = clean_copy(self.dir, "libc.so.6")
        self.src = src
        self.targets = [subprocess.Popen([str(self.dir / "ld-linux-x86-64.so.2"), "--library-path",
                                          str(self.dir), exe]) for _ in range(2)]  # fmt: skip
        self.runs: list[subprocess.Popen] = []
        self.token = f"{os.getpid()}.{time.monotonic_ns()}"  # marks our runs' agents
        time.sleep(0.2)
        for t in self.targets:  # only ever the copy
            maps = Path(f"/proc/{t.pid}/maps").read_text()
            assert str(self.lib) in maps and " /lib/x86_64-linux-gnu/libc.so.6" not in maps

    def start(self, n: int, kill: str = "") -> subprocess.Popen:
        env = dict(os.environ, PYTHONPATH=self.src, UPROBE_LEAK_TEST=self.token)
        cmd = [sys.executable, "-m", "pydtrace"]
        if kill:
            cmd, env["UPROBE_KILL"] = [sys.executable, "-c", KILLING], kill
        p = subprocess.Popen([*cmd, "-q", "-p", str(self.targets[n % 2].pid), "-n", SCRIPT],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)  # fmt: skip
        self.runs.append(p)
        return p

    def on(self, p: subprocess.Popen) -> None:
        assert p.stdout is not None and p.stdout.readline() == b"on\n"

    def end(self) -> tuple[bool, float, float]:
        for p in self.runs + self.targets:
            if p.poll() is None:
                p.kill()
            p.wait()
        stop = time.monotonic() + 60  # killed runs' agents finish, then remove everything
        while agents(self.token) and time.monotonic() < stop:
            time.sleep(0.2)
        held = uprobes_held(self.lib, probed_offsets(self.lib))
        fresh = clean_copy(self.dir, "fresh.so")
        n = 3000
        time.sleep(2)  # removed uprobes leave the tree by a work item each
        cost, base = mmap_cost(self.lib, n) / n * 1e6, mmap_cost(fresh, n) / n * 1e6
        shutil.rmtree(self.dir)
        return held, cost, base


def clean_copy(d: Path, name: str) -> Path:
    """A copy of libc the kernel holds no uprobe on: a uprobe left on a file
    since deleted sits on whatever inode takes its place next (the kernel
    keeps no reference to the inode); such copies stay aside until d goes."""
    libc = Path("/lib/x86_64-linux-gnu/libc.so.6")
    offsets = probed_offsets(libc)
    for n in range(10):
        shutil.copy(libc, d / name)
        if not uprobes_held(d / name, offsets):
            return d / name
        (d / name).rename(d / f"{name}.taken{n}")
    raise SystemExit("new files keep inheriting uprobes kept for deleted ones: reboot")


def probed_offsets(path: Path) -> list[int]:
    """Every function's first instruction, every instruction of those a-m."""
    from fnmatch import fnmatchcase

    sys.path.insert(0, str(TREE / "src"))
    from pydtrace.symbols import x86
    from pydtrace.symbols.elf import ElfFile

    elf = ElfFile(str(path))
    out = set()
    for s in elf.functions():
        if elf.in_code(s.addr):
            code = elf.code(s.addr, s.size) if fnmatchcase(s.name, "[a-m]*") else b""
            out.update(elf.addr_to_offset(s.addr + i) for i in [0, *x86.boundaries(code)])
    return sorted(out)


def agents(token: str) -> list[int]:
    """The uprobe agents (comm uprobe-holder) of runs whose environment holds token."""
    out = []
    for name in os.listdir("/proc"):
        try:
            if (Path(f"/proc/{name}/comm").read_text().strip() == "uprobe-holder"
                    and token.encode() in Path(f"/proc/{name}/environ").read_bytes()):  # fmt: skip
                out.append(int(name))
        except (OSError, ValueError):
            continue
    return out


def uprobes_held(path: Path, offsets: list[int]) -> bool:
    from pydtrace.engines.ebpf import bpf

    ret0 = struct.pack("<BBhiBBhi", 0xB7, 0, 0, 0, 0x95, 0, 0, 0)
    prog = bpf.prog_load(bpf.ProgType.KPROBE, ret0, name="b_held",
                         expected_attach_type=bpf.AttachType.TRACE_UPROBE_MULTI)  # fmt: skip
    try:
        fd = bpf.uprobe_multi_link(prog, str(path), offsets, False, os.getpid(), [2] * len(offsets))
    except bpf.BPFError:
        return True
    finally:
        bpf.close_fd(prog)
    bpf.close_fd(fd)
    return False


def mmap_cost(path: Path, n: int) -> float:
    fd = os.open(path, os.O_RDONLY)
    t = time.process_time()
    for _ in range(n):
        mmap.mmap(fd, 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_EXEC).close()
    os.close(fd)
    return time.process_time() - t


def log_leaks(fd: int) -> int:
    n = 0
    while True:
        try:
            n += b"leaking uprobe" in os.read(fd, 8192)
        except BlockingIOError:
            return n
        except BrokenPipeError:
            continue


def scenarios(rng: random.Random):
    def in_link_create(s: Scene) -> None:
        for i, d in enumerate(("0", "0.001", "0.003")):
            s.start(i, f"attach:{d}").wait()

    def in_link_close(s: Scene) -> None:
        for i, d in enumerate(("0", "0.0005", "0.002")):
            s.start(i, f"close:{d}").wait()

    def sigint_then_sigkill(s: Scene) -> None:
        for i, d in enumerate((0.0, 0.005, 0.02)):
            p = s.start(i)
            s.on(p)
            p.send_signal(signal.SIGINT)
            time.sleep(d)
            p.kill()
            p.wait()

    def sigkill_anytime(s: Scene) -> None:
        for i in range(4):
            p = s.start(i)
            time.sleep(rng.uniform(0.1, 2.0))
            p.kill()
            p.wait()

    def two_at_once(s: Scene) -> None:
        for _ in range(2):
            pair = [s.start(i) for i in range(2)]
            time.sleep(rng.uniform(0.3, 1.5))
            for p in pair:
                p.kill()
                p.wait()

    def sigkill_while_tracing(s: Scene) -> None:
        for i in range(3):
            p = s.start(i)
            s.on(p)
            p.kill()
            p.wait()

    def sigint(s: Scene) -> None:
        for i in range(2):
            p = s.start(i)
            s.on(p)
            p.send_signal(signal.SIGINT)
            p.wait()

    return [in_link_create, in_link_close, sigint_then_sigkill, sigkill_anytime, two_at_once,
            sigkill_while_tracing, sigint]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--src", default=str(TREE / "src"), help="the pydtrace tree to run")
    ap.add_argument("--load", type=int, default=0, help="busy loops during the runs")
    ap.add_argument("--repeat", type=int, default=1, help="each scenario R times")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pydtrace-uprobes-"))
    exe = work / "loop"
    (work / "loop.c").write_text(LOOP)
    subprocess.run(["cc", "-O1", "-o", str(exe), str(work / "loop.c")], check=True)
    burners = [subprocess.Popen(["nice", "-n", "19", sys.executable, "-c", "while True: pass"])
               for _ in range(args.load)]  # fmt: skip
    kmsg = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    os.lseek(kmsg, 0, os.SEEK_END)
    print(f"pydtrace from {args.src}, {args.load} busy loops")
    print(f"{'scenario':24} {'held':>5} {'mmap us':>8} {'fresh us':>8} {'log':>6}")
    try:
        for scene in scenarios(random.Random(17)):
            for _ in range(args.repeat):
                s = Scene(args.src, str(exe))
                t = time.monotonic()
                try:
                    scene(s)
                finally:
                    held, cost, base = s.end()
                print(f"{scene.__name__:24} {'yes' if held else 'no':>5} {cost:8.1f} {base:8.1f}"
                      f" {log_leaks(kmsg):6d}  ({time.monotonic() - t:.0f} s)", flush=True)  # fmt: skip
    finally:
        for b in burners:
            b.kill()
            b.wait()
        os.close(kmsg)
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
