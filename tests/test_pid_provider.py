"""The pid provider on uprobes (eBPF engine): C programs compiled at test time."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, bpf_maps_ok, need, pydtrace

PROG = r"""
#include <stdio.h>
#include <stdlib.h>
int __attribute__((noinline)) add3(int a, long b, int c) { return a + b + c; }
long __attribute__((noinline)) many(long a, long b, long c, long d, long e, long f,
                                    long g, long h) { return a + b + c + d + e + f + g + h; }
int libfn(int a, int b);
int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 5, s = 0;
    for (int i = 0; i < n; i++) s += add3(i, 10, -3);
    s += many(1, 2, 3, 4, 5, 6, 7, 8);
#ifdef WITH_LIB
    s += libfn(6, 7);
#endif
    char *p = malloc(1234);
    free(p);
    printf("%d\n", s);
    return 0;
}
"""
LIB = "int __attribute__((noinline)) libfn(int a, int b) { return a * b; }\n"


@pytest.fixture(autouse=True)
def _kernel() -> None:
    need(bpf_maps_ok(), "no BPF maps (needs root)")
    need(os.path.exists("/sys/bus/event_source/devices/uprobe/type"), "no uprobe PMU")


def build(tmp: Path, name: str, src: str, *flags: str) -> str:
    need(shutil.which("cc") is not None, "no C compiler")
    c = tmp / f"{name}.c"
    c.write_text(src)
    out = tmp / name
    subprocess.run(["cc", "-O0", "-o", str(out), str(c), *flags], check=True)
    return str(out)


@pytest.fixture(params=["pie", "nopie"])
def prog(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    flags = ["-pie", "-fPIE"] if request.param == "pie" else ["-no-pie", "-fno-pie"]
    return build(tmp_path, "prog", PROG, *flags)


def test_entry_args_and_return_values(prog: str) -> None:
    r = pydtrace(
        "-q",
        "-n",
        'pid$target:a.out:add3:entry { printf("%s:%s:%s %d %d %d\\n", probemod, probefunc,'
        " probename, arg0, arg1, (int)arg2); }",
        "-n",
        'pid$target:a.out:add3:return { printf("ret %d %d\\n", arg0, arg1); }',
        "-n",
        'pid$target:a.out:many:entry { printf("%d %d %d %d %d %d %d %d\\n", arg0, arg1, arg2,'
        " arg3, arg4, arg5, arg6, arg7); }",
        "-c",
        f"{prog} 3",
    )
    assert r.status == 0, r.err
    lines = [ln for ln in r.out.splitlines() if ln]
    assert lines == [
        "60",
        "prog:add3:entry 0 10 -3",
        "ret 0 7",
        "prog:add3:entry 1 10 -3",
        "ret 0 8",
        "prog:add3:entry 2 10 -3",
        "ret 0 9",
        "1 2 3 4 5 6 7 8",
    ]


def test_counts_and_offset_probe(prog: str) -> None:
    r = pydtrace(
        "-q",
        "-n",
        "pid$target:a.out:add3:entry { @e = count(); }",
        "-n",
        "pid$target:a.out:add3:1 { @o = count(); }",
        "-n",
        'END { printa("entry %@d\\n", @e); printa("offset %@d\\n", @o); }',
        "-c",
        f"{prog} 1000",
    )
    assert r.status == 0, r.err
    assert "entry 1000\n" in r.out and "offset 1000\n" in r.out


def test_listing(prog: str) -> None:
    r = pydtrace("-l", "-n", "pid$target:a.out:add3:", "-c", prog)
    assert r.status == 0, r.err
    rows = [ln.split() for ln in r.out.splitlines()]
    assert rows[0] == ["ID", "PROVIDER", "MODULE", "FUNCTION", "NAME"]
    assert [row[2:] for row in rows[1:]] == [["prog", "add3", "entry"], ["prog", "add3", "return"]]
    assert all(row[1].startswith("pid") and row[1][3:].isdigit() for row in rows[1:])


def test_libc_by_short_names(prog: str) -> None:
    for mod in ("libc.so.6", "libc", "libc*"):
        r = pydtrace(
            "-q",
            "-n",
            f'pid$target:{mod}:malloc:entry /arg0 == 1234/ {{ printf("%s %s %d\\n", probemod,'
            " probefunc, arg0); }",
            "-c",
            prog,
        )
        assert r.status == 0, r.err
        assert "libc.so.6 malloc 1234\n" in r.out, mod


def test_shared_library_of_our_own(tmp_path: Path) -> None:
    lib = build(tmp_path, "libmine.so", LIB, "-shared", "-fPIC")
    exe = build(tmp_path, "withlib", "#define WITH_LIB\n" + PROG, f"-L{tmp_path}", "-lmine",
                f"-Wl,-rpath,{tmp_path}")  # fmt: skip
    assert os.path.exists(lib)
    r = pydtrace(
        "-q",
        "-n",
        'pid$target:libmine.so:libfn:entry { printf("%s %d %d\\n", probemod, arg0, arg1); }',
        "-n",
        'pid$target:libmine*::return { printf("%s = %d\\n", probefunc, arg1); }',
        "-c",
        f"{exe} 2",
    )
    assert r.status == 0, r.err
    assert "libmine.so 6 7\nlibfn = 42\n" in r.out


def test_running_process_by_pid(prog: str) -> None:
    src = Path(prog).with_name("loop.c")
    src.write_text(
        "#include <unistd.h>\nint __attribute__((noinline)) tick(int i) { return i; }\n"
        "int main(void) { for (int i = 0;; i++) { tick(i); usleep(2000); } }\n"
    )
    exe = str(src.with_suffix(""))
    subprocess.run(["cc", "-O0", "-o", exe, str(src)], check=True)
    p = subprocess.Popen([exe])
    try:
        time.sleep(0.1)
        r = pydtrace("-q", "-n", f"pid{p.pid}:a.out:tick:entry {{ @ = count(); }}",
                     "-n", "tick-300ms { exit(0); }")  # fmt: skip
        assert r.status == 0, r.err
        assert int(r.out.split()[0]) > 10
    finally:
        p.kill()
        p.wait()


def test_errors(prog: str) -> None:
    r = pydtrace("-n", "pid$target:a.out:nosuch:entry", "-c", prog)
    assert (r.status, r.err.splitlines()[-1].split(": ", 2)[-1]) == (
        1,
        f"probe description pid{r.err.split('pid')[-1].split(':')[0]}:a.out:nosuch:entry "
        "does not match any probes",
    )
    r = pydtrace("-n", "pid999999:a.out:main:entry")
    assert r.status == 1 and r.err.endswith("failed to grab process 999999\n")
    r = pydtrace("-n", "pid$target:a.out:main:zz", "-c", prog)
    assert r.status == 1 and "invalid probe name 'zz'" in r.err and "Traceback" not in r.err


def test_kill_9_leaves_nothing(tmp_path: Path, prog: str) -> None:
    src = tmp_path / "forever.c"
    src.write_text(
        "#include <unistd.h>\nint __attribute__((noinline)) tick(int i) { return i; }\n"
        "int main(void) { for (int i = 0;; i++) { tick(i); usleep(1000); } }\n"
    )
    exe = str(tmp_path / "forever")
    subprocess.run(["cc", "-O0", "-o", exe, str(src)], check=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    d = subprocess.Popen(
        [sys.executable, "-m", "pydtrace", "-q", "-n",
         'pid$target:a.out:tick:entry /arg0 == 50/ { printf("hit\\n"); }', "-c", exe],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True,
    )  # fmt: skip
    assert d.stdout is not None
    assert d.stdout.readline() == b"hit\n"  # the probe is attached and firing
    target = [int(x) for x in Path(f"/proc/{d.pid}/task/{d.pid}/children").read_text().split()]
    os.kill(d.pid, signal.SIGKILL)
    d.wait()
    for t in target:
        try:
            os.kill(t, signal.SIGKILL)
        except ProcessLookupError:
            pass
    events = Path("/sys/kernel/tracing/uprobe_events")
    if events.exists():
        assert "forever" not in events.read_text()
    maps = Path("/proc/self/maps").read_text()
    assert "forever" not in maps
    r = pydtrace("-q", "-n", "pid$target:a.out:add3:entry { @ = count(); }", "-c", f"{prog} 7")
    assert r.status == 0 and "7" in r.out.split()[1:], (r.out, r.err)
