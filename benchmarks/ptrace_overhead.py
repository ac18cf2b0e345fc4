"""Cost of tracing one process: `dd if=/dev/zero of=/dev/null bs=1 count=N`
untraced, under strace, and under pydtrace's ptrace engine, in one run.

    python3 benchmarks/ptrace_overhead.py [--count N] [--runs R]

Rows: the untraced run; `strace -f -c` against pydtrace counting every
syscall by name, with ptrace stops (the default) and with `-x seccompnotify`
(seccomp notifications, no stops); `strace -f --seccomp-bpf -e trace=openat` against pydtrace
printing each openat path (seccomp-filtered, so dd's reads and writes never
stop). Medians of R runs, with each tool's ratio to the untraced run and
pydtrace's ratio to its strace counterpart.
"""

from __future__ import annotations

import argparse
import shutil
import sys

from timing import median_time  # benchmarks/timing.py, beside this script


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--count", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--openat-only", action="store_true", help="only the seccomp-filtered rows (for large N)"
    )
    a = ap.parse_args()
    dd = f"dd if=/dev/zero of=/dev/null bs=1 count={a.count} status=none"
    ours = [sys.executable, "-m", "pydtrace", "-x", "engine=ptrace", "-q", "-c", dd]
    rows: list[tuple[str, float]] = [("untraced", median_time(dd.split(), a.runs))]
    pairs: list[tuple[tuple[str, float], tuple[str, float]]] = []
    strace = shutil.which("strace") is not None

    def pair(peer_name: str, peer_cmd: list[str], our_name: str, prog: str) -> None:
        if strace:
            rows.append((peer_name, median_time(peer_cmd, a.runs)))
        rows.append((our_name, median_time([*ours, "-n", prog], a.runs)))
        if strace:
            pairs.append((rows[-1], rows[-2]))

    if not a.openat_only:
        count_all = "syscall:::entry { @[probefunc] = count(); }"
        pair("strace -f -c", ["strace", "-f", "-c", "-o", "/dev/null", *dd.split()],
             "pydtrace count all", count_all)  # fmt: skip
        # the same count from seccomp notifications, without stops (opt-in)
        rows.append(
            (
                "  -x seccompnotify",
                median_time([*ours, "-x", "seccompnotify", "-n", count_all], a.runs),
            )
        )
        if strace:
            pairs.append((rows[-1], rows[-3]))
    seccomp = ["strace", "-f", "--seccomp-bpf", "-e", "trace=openat", "-o", "/dev/null"]
    pair("strace seccomp openat", [*seccomp, *dd.split()],
         "pydtrace openat paths", 'syscall::openat:entry { printf("%s\\n", copyinstr(arg1)); }')  # fmt: skip
    base = rows[0][1]
    print(f"dd bs=1 count={a.count}, median of {a.runs} runs")
    print(f"{'':<24}{'seconds':>9}{'x untraced':>12}")
    for name, t in rows:
        print(f"{name:<24}{t:9.3f}{t / base:12.1f}")
    for (ours_name, ours_t), (peer_name, peer_t) in pairs:
        print(f"{ours_name} / {peer_name} = {ours_t / peer_t:.2f}")


if __name__ == "__main__":
    main()
