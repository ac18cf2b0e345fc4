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
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TREE = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TREE / "src"), str(TREE / "tests")]  # the witnesses read with this tree
from uprobe_witness import (  # noqa: E402 (tests/uprobe_witness.py, shared with the test)
    KILLING,
    LOOP,
    SCRIPT,
    agents,
    clean_copy,
    kernel_log_leaks,
    mmap_cost,
    probed_offsets,
    uprobes_held,
)


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
                      f" {len(kernel_log_leaks(kmsg)):6d}  ({time.monotonic() - t:.0f} s)", flush=True)  # fmt: skip
    finally:
        for b in burners:
            b.kill()
            b.wait()
        os.close(kmsg)
        shutil.rmtree(work)


if __name__ == "__main__":
    try:
        main()
    except RuntimeError as e:  # clean_copy: no copy of libc free of kept uprobes
        raise SystemExit(f"uprobe_leaks.py: {e}") from None
