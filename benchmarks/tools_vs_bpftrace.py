"""The toolkit against bpftrace's tools and strace, in one run.

    python3 benchmarks/tools_vs_bpftrace.py [--loops N] [--runs R] [--cmd 'CMD ...']

1. opensnoop and execsnoop, system-wide, beside bpftrace's opensnoop.bt and
   execsnoop.bt (/usr/sbin), on one workload: a shell loop of N iterations,
   each exec'ing `/bin/true TOKEN` and `/bin/cat FILE` (FILE's name holds
   TOKEN). For each tracer:
     start-up   seconds from starting it to the first event it prints (the
                script opens a marker path, or execs a marker command, every
                5 ms until the marker's line comes out): the median of R
                starts after two more of each tracer (the steady state:
                pydtrace's first start keeps its compile, its second learns
                where $pid stands, engines/ebpf/program_cache.py); "first" is
                the very first start of each;
     added      the median wall time of R workload runs, each while the
                tracer is attached, minus the median of the untraced runs;
                the runs come in R cycles (an untraced run, a tracer started,
                a traced run, the tracer stopped, for each tracer in turn), so
                that the machine's drift falls on traced and untraced alike.
                The workload runs on one CPU (--pin: the last, by default;
                the tracers are not pinned): free to move, its runs spread by
                35 ms here (interquartile range of 0.46 s), as much as a
                tracer adds; pinned, by 10 ms;
     kernel     seconds a workload run spent in the tracer's BPF programs
                (the kernel's own count, kernel.bpf_stats_enabled, on only
                while the workload runs; bpftool reads it): the part of the
                added time that is the tracer's in the traced programs'
                context, steadier than wall times on a busy machine;
     cpu        the tracer's own CPU seconds (user + system) from its start to
                its end, one workload run traced (median of R);
     events     the fewest lines naming TOKEN in a traced workload run
                (opensnoop: N, cat's opens of FILE; execsnoop: 2N, both
                execs), and drops reported.
   Ratios are pydtrace / bpftrace (targets: added <= 0.5x, start-up <= 0.5x).
2. `dtruss -c CMD` on each engine beside `strace -c CMD` (and syscount, which
   counts only, as strace -c does; dtruss -c prints every call as well, as
   macOS's dtruss does): median wall seconds of R runs and the CPU seconds of
   the run and its children. Two commands: --cmd (a few hundred calls) and
   dd bs=1 count=20000 (40000 calls). Ratio: dtruss / strace (target <= 1x).

Python start-up counts as it does for an installed tool: PYTHONDONTWRITEBYTECODE
and PYTHONUNBUFFERED are dropped from the environment (with them, every module
is compiled from source on each run, and every line is one write(2)).
Run as root (both tracers load BPF programs). The machine's load shows in wall
times: the CPU columns are the steadier measure.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")
TOOLS = [sys.executable, "-m", "pydtrace.cli.tools"]
SETTLE = 1.5  # seconds between one tracer's end and the next one's start
WARM = 2  # starts of each tracer before those whose median is its start-up
NOISE = 0.010  # seconds: added times below this are not compared


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items()
         if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")}  # fmt: skip
    e["PYTHONPATH"] = SRC + os.pathsep + e.get("PYTHONPATH", "")
    return e


def run_timed(argv: list[str], cpu: int | None = None) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and its children) of one run;
    on CPU `cpu` alone when given."""
    pin = None if cpu is None else (lambda: os.sched_setaffinity(0, {cpu}))
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env(),
                         preexec_fn=pin)  # fmt: skip
    assert p.stderr is not None
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{argv[:4]} failed: {err.decode(errors='replace')[-300:]}")
    return wall, ru.ru_utime + ru.ru_stime


STATS = "/proc/sys/kernel/bpf_stats_enabled"


def kernel_ns(pid: int) -> int:
    """Nanoseconds the BPF programs that process `pid` holds have run while the
    kernel counted (kernel.bpf_stats_enabled): the time a tracer adds inside
    the traced programs' own system calls, which wall times are too noisy to
    show. 0 without bpftool."""
    if shutil.which("bpftool") is None:
        return 0
    import json

    held = set()  # the ids of the programs its fds hold (/proc/PID/fdinfo: prog_id)
    try:
        for fd in os.listdir(f"/proc/{pid}/fdinfo"):
            try:
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    for line in f:
                        if line.startswith("prog_id:"):
                            held.add(int(line.split()[1]))
            except OSError:
                pass
    except OSError:
        return 0
    out = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True).stdout
    try:
        progs = json.loads(out or "[]")
    except ValueError:
        return 0
    return sum(p.get("run_time_ns", 0) for p in progs if p.get("id") in held)


def counting(on: bool) -> str:
    """Turn the kernel's BPF run-time counting on or off; what it was."""
    try:
        with open(STATS) as f:
            was = f.read().strip()
        with open(STATS, "w") as f:
            f.write("1" if on else "0")
        return was
    except OSError:
        return ""


def median_run(argv: list[str], runs: int) -> tuple[float, float]:
    got = [run_timed(argv) for _ in range(runs)]
    return statistics.median(g[0] for g in got), statistics.median(g[1] for g in got)


class Tracer:
    """A system-wide tracer writing to a file, started and timed to its first event."""

    def __init__(self, argv: list[str], poke, marker: str, workdir: Path, name: str) -> None:
        self.out_path = workdir / f"{name}.out"
        self.err_path = workdir / f"{name}.err"
        self.out = open(self.out_path, "wb")
        self.err = open(self.err_path, "wb")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(argv, stdout=self.out, stderr=self.err, env=env(),
                                     start_new_session=True)  # fmt: skip
        deadline = t0 + 120
        while True:
            poke()
            if marker.encode() in self.out_path.read_bytes():
                self.startup = time.perf_counter() - t0
                break
            if self.proc.poll() is not None or time.perf_counter() > deadline:
                self.stop()
                sys.exit(f"{name} did not start: {self.err_path.read_text()[-400:]}")
            time.sleep(0.005)

    def stop(self) -> float:
        """Stop it (SIGINT, as Ctrl-C); its CPU seconds."""
        cpu = 0.0
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            _, _, ru = os.wait4(self.proc.pid, 0)
            cpu = ru.ru_utime + ru.ru_stime
        except ChildProcessError:
            pass
        self.out.close()
        self.err.close()
        return cpu

    def lines_with(self, token: str) -> int:
        return sum(1 for x in self.out_path.read_text(errors="replace").splitlines() if token in x)

    def drops(self) -> str:
        text = self.err_path.read_text(errors="replace")
        lines = [x for x in text.splitlines() if "drop" in x.lower() or "lost" in x.lower()]
        return "; ".join(lines)[:60] or "-"


def snoops(a: argparse.Namespace, work: Path) -> None:
    token = f"tvb{os.getpid()}"
    target = work / f"file-{token}"
    target.write_text("x\n")
    script = work / "workload.sh"
    script.write_text(
        f"#!/bin/sh\ni=0\nwhile [ $i -lt {a.loops} ]; do\n"
        f"  /bin/true {token}\n  /bin/cat {target} >/dev/null\n  i=$((i+1))\ndone\n"
    )
    script.chmod(0o755)
    workload = [str(script)]
    where = "any CPU" if a.pin is None else f"CPU {a.pin} alone (--pin)"
    print(f"workload: {a.loops} x (exec /bin/true, exec /bin/cat FILE), on {where}\n")
    ready = f"ready{os.getpid()}x"  # the marker: not TOKEN, which counts the workload's events
    ready_path = f"/nonexistent-{ready}"

    def poke_open() -> None:
        try:
            os.close(os.open(ready_path, os.O_RDONLY))
        except OSError:
            pass

    def poke_exec() -> None:  # (posix_spawn: the poking costs the tracers' start less CPU)
        os.waitpid(os.posix_spawn("/bin/true", ["/bin/true", ready], os.environ), 0)

    pairs = [
        ("opensnoop", [*TOOLS, "opensnoop"], ["bpftrace", "-B", "none", "/usr/sbin/opensnoop.bt"],
         poke_open, ready_path, a.loops),
        ("execsnoop", [*TOOLS, "execsnoop"], ["bpftrace", "-B", "none", "/usr/sbin/execsnoop.bt"],
         poke_exec, ready, 2 * a.loops),
    ]  # fmt: skip
    head = (f"{'':22}{'first s':>8}{'start-up s':>11}{'added s':>9}{'kernel s':>9}{'cpu s':>7}"
            f"{'events/run':>11}{'expected':>9}  drops")  # fmt: skip
    for name, ours, theirs, poke, marker, expected in pairs:
        tracers = [("pydtrace " + name, ours)]
        if shutil.which("bpftrace") is not None:
            tracers.append((f"bpftrace {name}.bt", theirs))
        first: dict[str, float] = {}
        for _ in range(WARM):  # (pydtrace's first start keeps its compile, its second learns $pid)
            for who, argv in tracers:
                t = Tracer(argv, poke, marker, work, who.split()[0] + name)
                first.setdefault(who, t.startup)
                t.stop()
                time.sleep(SETTLE)
        # Cycles: an untraced run, then each tracer started, one traced run and
        # stopped, the tracers' order swapped each cycle. The untraced and the
        # traced runs interleave over the same minutes, so the machine's drift
        # (an exec's cost moves by 10% from one run to the next here) falls on
        # both alike.
        base: list[float] = []
        starts: dict[str, list[float]] = {who: [] for who, _ in tracers}
        traced: dict[str, list[float]] = {who: [] for who, _ in tracers}
        kernel: dict[str, list[float]] = {who: [] for who, _ in tracers}
        cpu: dict[str, list[float]] = {who: [] for who, _ in tracers}
        seen: dict[str, list[float]] = {who: [] for who, _ in tracers}
        drops: dict[str, str] = {}
        for c in range(a.runs):
            for who, argv in tracers if c % 2 == 0 else tracers[::-1]:
                base.append(run_timed(workload, a.pin)[0])
                t = Tracer(argv, poke, marker, work, who.split()[0] + name)
                starts[who].append(t.startup)
                was = counting(True)
                try:
                    before = kernel_ns(t.proc.pid)
                    traced[who].append(run_timed(workload, a.pin)[0])
                    kernel[who].append((kernel_ns(t.proc.pid) - before) / 1e9)
                finally:
                    if was != "1":
                        counting(False)  # as it was
                time.sleep(0.3)  # the last events out
                cpu[who].append(t.stop())
                seen[who].append(t.lines_with(token))
                said = t.drops()
                if said != "-":
                    drops[who] = said
                # a tracer's detaching may go on after it exits (pydtrace's in
                # a holder process; a tracepoint's last perf event waits ~35-70
                # ms under a kernel mutex that attaching takes too): the next
                # start waits until it is over, or its start-up would pay for it
                time.sleep(SETTLE)
        b = statistics.median(base)
        q = statistics.quantiles(base, n=4)
        print(f"{name}: untraced {b:.3f} s (median of {len(base)}, interquartile range "
              f"{q[2] - q[0]:.3f} s)")  # fmt: skip
        print(head)
        got: dict[str, tuple[float, float, float]] = {}
        for who, _ in tracers:
            startup = statistics.median(starts[who])
            added = statistics.median(traced[who]) - b
            k = statistics.median(kernel[who])
            got[who.split()[0]] = (startup, added, k)
            print(f"{who:22}{first[who]:8.3f}{startup:11.3f}{added:9.3f}{k:9.4f}"
                  f"{statistics.median(cpu[who]):7.2f}{min(seen[who]):11.0f}{expected:9d}  "
                  f"{drops.get(who, '-')}", flush=True)  # fmt: skip
        if "bpftrace" in got:
            (s_ours, add_ours, k_ours), (s_bt, add_bt, k_bt) = got["pydtrace"], got["bpftrace"]
            # an exec costs ~1 ms and varies by more than a tracer adds: a ratio
            # of two added times under NOISE says nothing
            added = (f"added time {add_ours / add_bt:.2f}x" if add_bt > NOISE
                     else f"added time within noise ({add_ours:+.3f} s, {add_bt:+.3f} s)")  # fmt: skip
            kern = f", kernel time {k_ours / k_bt:.2f}x" if k_bt > 0 else ""
            print(f"ratio pydtrace/bpftrace: start-up {s_ours / s_bt:.2f}x, {added}{kern}\n")


def counts(a: argparse.Namespace, work: Path) -> None:
    dd = shutil.which("dd") or "/bin/dd"
    cmds = [
        ("CMD: " + " ".join(a.cmd), a.cmd),
        ("dd bs=1 count=20000 (40000 calls)",
         [dd, "if=/dev/zero", "of=/dev/null", "bs=1", "count=20000", "status=none"]),
    ]  # fmt: skip
    for title, cmd in cmds:
        print(title)
        print(f"{'':26}{'wall s':>8}{'cpu s':>7}{'ratio':>7}")
        rows = [
            ("untraced", cmd),
            ("strace -c", ["strace", "-c", "-o", str(work / "strace.out"), *cmd]),
            ("dtruss -c (ebpf)", [*TOOLS, "dtruss", "-c", "--engine", "ebpf", *cmd]),
            ("dtruss -c (ptrace)", [*TOOLS, "dtruss", "-c", "--engine", "ptrace", *cmd]),
            ("syscount (ebpf)", [*TOOLS, "syscount", "--engine", "ebpf", "--", *cmd]),
            ("syscount (ptrace)", [*TOOLS, "syscount", "--engine", "ptrace", "--", *cmd]),
        ]
        strace_wall = None
        for name, argv in rows:
            wall, cpu = median_run(argv, a.runs)
            if name == "strace -c":
                strace_wall = wall
            ratio = f"{wall / strace_wall:6.2f}x" if strace_wall and name != "strace -c" else ""
            print(f"{name:26}{wall:8.3f}{cpu:7.2f}{ratio:>7}", flush=True)
        print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--loops", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cmd", default="/bin/ls -l /usr/bin")
    ap.add_argument("--only", choices=("snoops", "counts"))
    ap.add_argument("--pin", default="last",
                    help="the snoops' workload's CPU: a number, 'last' (the default) or 'none'")  # fmt: skip
    a = ap.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    a.pin = (None if a.pin == "none" or len(cpus) < 2
             else cpus[-1] if a.pin == "last" else int(a.pin))  # fmt: skip
    a.cmd = a.cmd.split()
    if os.geteuid() != 0:
        sys.exit("run as root: the tracers load BPF programs")
    print(f"load average: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}, "
          f"{os.cpu_count()} CPUs\n")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="tools-bench-") as d:
        if a.only != "counts":
            snoops(a, Path(d))
        if a.only != "snoops":
            counts(a, Path(d))


if __name__ == "__main__":
    main()
