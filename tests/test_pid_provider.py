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
    # the command's own line ("60", written at its exit) comes before or amid
    # the trace's, as pydtrace reads the records while it runs or after
    assert lines.count("60") == 1
    assert [ln for ln in lines if ln != "60"] == [
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


def _objdump_offsets(path: str, func: str, upto: str = "") -> list[str]:
    """The hex offsets of func's instructions as objdump disassembles them
    (up to and without the first whose mnemonic is upto)."""
    need(shutil.which("objdump") is not None, "no objdump (binutils)")
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", path], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    body = out.split(f"<{func}>:\n", 1)[1].split("\n\n", 1)[0]
    insns = [ln.split(":", 1) for ln in body.splitlines() if ":" in ln]
    addrs = [int(a, 16) for a, _ in insns]
    if upto:
        addrs = addrs[: [text.split()[0] for _, text in insns].index(upto)]
    return [f"{a - addrs[0]:x}" for a in addrs]


def test_listing(prog: str) -> None:
    """An empty name is entry, return and every instruction, as dtrace lists them."""
    r = pydtrace("-l", "-n", "pid$target:a.out:add3:", "-c", prog)
    assert r.status == 0, r.err
    rows = [ln.split() for ln in r.out.splitlines()]
    assert rows[0] == ["ID", "PROVIDER", "MODULE", "FUNCTION", "NAME"]
    names = ["entry", "return"] + _objdump_offsets(prog, "add3")
    assert len(names) > 10
    assert [row[2:] for row in rows[1:]] == [["prog", "add3", n] for n in names]
    assert all(row[1].startswith("pid") and row[1][3:].isdigit() for row in rows[1:])
    r = pydtrace("-l", "-n", "pid$target:a.out:add3:1*", "-c", prog)
    assert [row.split()[4] for row in r.out.splitlines()[1:]] == [
        n for n in names if n.startswith("1")
    ]


# probes on all of libc: seconds alone, minutes on a loaded machine
SLOW_TIMEOUT = 300


def _count_by(prog: str, desc: str, key: str, n: int) -> tuple[str, dict[str, str]]:
    """Run `prog n` under `desc { @[key] = count(); }`: (its output, the counts)."""
    r = pydtrace("-q", "-n", f"{desc} {{ @[{key}] = count(); }}", "-n",
                 'END { printa("%s %@d\\n", @); }', "-c", f"{prog} {n}", timeout=SLOW_TIMEOUT)  # fmt: skip
    assert r.status == 0, r.err
    lines = r.out.splitlines()
    return lines[0], dict(ln.split() for ln in lines[1:] if ln)


def test_every_instruction_fires(prog: str) -> None:
    """Each instruction probe of a function called 1000 times fires 1000 times,
    and the program's own output is what it prints untraced."""
    out, counts = _count_by(prog, "pid$target:a.out:add3:", "probename", 1000)
    assert out == "506536"
    assert sorted(counts) == sorted(["entry", "return"] + _objdump_offsets(prog, "add3"))
    assert set(counts.values()) == {"1000"}


def test_whole_executable_leaves_the_program_alone(prog: str) -> None:
    """pid$target:a.out:: probes _start too, which is jumped to with argc at the
    stack top: no return probe there (a uretprobe would overwrite argc)."""
    out, counts = _count_by(prog, "pid$target:a.out::", "probefunc", 10)
    assert out == "151"  # the loop ran 10 times: argv intact
    assert counts["add3"] == str(10 * (2 + len(_objdump_offsets(prog, "add3"))))
    # entry and each instruction up to the call of __libc_start_main (then hlt)
    assert int(counts["_start"]) == 1 + len(_objdump_offsets(prog, "_start", upto="hlt"))


@pytest.mark.slow
def test_every_libc_function_leaves_the_program_alone(prog: str) -> None:
    """An entry probe on each of libc's ~7,000 functions: the program computes
    what it does untraced (a probe on an EVEX instruction the kernel emulates
    as a branch would skip it: memset's first instruction on AVX-512 CPUs), and
    nothing fires in the forked pydtrace before exec (its execve call)."""
    out, counts = _count_by(prog, "pid$target:libc.so.6::entry", "probefunc", 1000)
    assert out == "506536"
    assert counts["malloc"] == "2"  # ours and stdout's buffer
    assert counts["free"] == "1"
    assert "execve" not in counts and "__execvpe" not in counts
    # f@@GLIBC_2.2.5 and f@GLIBC_2.2.5 at f's address are f (no second probe)
    assert not [f for f in counts if "@" in f]


@pytest.mark.slow
def test_every_instruction_of_libc_leaves_the_program_alone(tmp_path: Path) -> None:
    """A probe on each of libc's ~300,000 instructions (one program, one link):
    the program computes what it does untraced. Guards the instructions the
    kernel accepts but steps wrongly (syscall: brk's result went astray and
    malloc crashed)."""
    exe = build(tmp_path, "prog", PROG)
    r = pydtrace("-q", "-n", 'pid$target:libc.so.6:: /probefunc == "malloc" && probename =='
                 ' "entry"/ { @ = count(); }', "-c", f"{exe} 1000", timeout=SLOW_TIMEOUT)  # fmt: skip
    assert r.status == 0, r.err
    assert sorted(r.out.split("\n")) == ["", "", " " * 16 + "2", "506536"], r.out


@pytest.mark.slow
def test_a_file_s_entry_probes_share_one_program(prog: str) -> None:
    """libc's ~7,000 entry probes are one program on one uprobe_multi link, the
    attach cookie naming the probe: probefunc, arguments and counts per probe."""
    desc = "pid$target:libc.so.6::entry"
    r = pydtrace("-e", "-S", "-n", f"{desc} {{ @ = count(); }}", "-c", prog, timeout=SLOW_TIMEOUT)
    assert [ln.split()[2] for ln in r.err.splitlines() if ln.startswith("Disassembly of")] == [
        "dt_sys_u0", "dt_exec_gate"]  # fmt: skip
    r = pydtrace("-q", "-n", f'{desc} /probefunc == "malloc" && arg0 == 1234/ {{ printf("%s %s'
                 ' %s %d\\n", probemod, probefunc, probename, arg0); }',
                 "-n", "pid$target:libc.so.6::return /probefunc == \"free\"/ { @ = count(); }",
                 "-c", f"{prog} 2", timeout=SLOW_TIMEOUT)  # fmt: skip
    assert r.status == 0, r.err
    assert sorted(r.out.split("\n")) == ["", "", " " * 16 + "1", "51",
                                          "libc.so.6 malloc entry 1234"], r.out  # fmt: skip


def test_too_many_probes_is_an_error_and_the_command_never_runs(prog: str) -> None:
    code = (
        "import runpy, sys\n"
        "import pydtrace.engines.ebpf.providers.uprobe as uprobe\n"
        "uprobe.MAX_UPROBES = 3\n"
        "sys.argv = ['pydtrace'] + sys.argv[1:]\n"
        "runpy.run_module('pydtrace', run_name='__main__')\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    for desc, ok in (("add3:entry,pid$target:a.out:many:entry", True), ("add3:", False)):
        p = subprocess.run(
            [sys.executable, "-c", code, "-q", "-n", f"pid$target:a.out:{desc} {{ n++; }}", "-c", prog],
            capture_output=True, text=True, timeout=60, env=env,
        )  # fmt: skip
        if ok:
            assert (p.returncode, p.stdout) == (0, "81\n\n"), p.stderr  # dtrace ends with a newline
            continue
        n = 2 + len(_objdump_offsets(prog, "add3"))
        assert (p.returncode, p.stdout, p.stderr) == (
            1,
            "",  # the held command was killed before exec: it printed nothing
            f"pydtrace: could not enable tracing: {n} programs for pid and usdt probes are "
            "more than the 3 the eBPF engine loads at once: name fewer functions or probes\n",
        )


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
    assert (r.status, r.err) == (
        1,
        "pydtrace: invalid probe specifier pid$target:a.out:nosuch:entry: "
        "failed to lookup 'nosuch' in module 'a.out'\n",
    )
    r = pydtrace("-n", "pid$target:a.out:nosuch*:entry", "-c", prog)  # a glob: no match
    assert r.status == 1 and r.err.endswith(":a.out:nosuch*:entry does not match any probes\n")
    for desc, why in (
        ("pid$target:libc:-:800", "only the a.out module is valid with the '-' function"),
        ("pid$target::-:", "only individual addresses may be specified with the '-' function"),
        ("pid$target::-:1*", "only individual addresses may be specified with the '-' function"),
        ("pid$target::-:3", "address 0x3 is not in prog's code"),  # the ELF header
    ):
        r = pydtrace("-n", desc, "-c", prog)
        assert (r.status, r.err) == (1, f"pydtrace: invalid probe specifier {desc}: {why}\n")
    r = pydtrace("-n", "pid999999:a.out:main:entry")
    assert r.status == 1 and r.err.endswith("failed to grab process 999999\n")
    r = pydtrace("-n", "pid$target:a.out:main:zz", "-c", prog)
    assert r.status == 1 and "invalid probe name 'zz'" in r.err and "Traceback" not in r.err
    # a breakpoint inside an instruction would change it: refused
    r = pydtrace("-n", "pid$target:a.out:add3:2", "-c", prog)
    assert (r.status, r.err.splitlines()[-1]) == (
        1,
        "pydtrace: invalid probe specifier pid$target:a.out:add3:2: "
        "prog`add3: offset 0x2 is not aligned on an instruction",
    )
    r = pydtrace("-n", "pid$target:a.out:add3:400", "-c", prog)
    assert r.status == 1 and r.err.endswith("prog`add3: offset 0x400 outside of the function's "
                                            "32 bytes\n"), r.err  # fmt: skip
    r = pydtrace("-n", "pid$target:a.out:_start:return", "-c", prog)
    assert r.status == 1 and r.err.endswith(
        "prog`_start is the entry point, never called: it has no return probe\n"
    )


ALIASES = r"""
#include <stdio.h>
int __attribute__((noinline)) go(int x) { return x + 1; }
#pragma weak _go = go
static int __attribute__((noinline)) lo(int x) { return x + 2; }
#pragma weak _lo = lo
int main(void) { int s = 0; for (int i = 0; i < 3; i++) s += go(i) + lo(i); printf("%d\n", s); }
"""


def test_aliases_share_one_probe_named_as_dtrace_does(tmp_path: Path) -> None:
    """Symbols at one address are one probe, named global-or-weak before local,
    then by fewer leading underscores: go (global) over _go (weak), _lo (weak)
    over lo (static). Two descriptions naming one probe enable the clause twice
    (dtrace's tst.weak1.d counts on it): 3 calls count 6."""
    exe = build(tmp_path, "aliases", ALIASES)
    r = pydtrace("-q", "-n", "pid$target:a.out:go:entry, pid$target:a.out:_go:entry,"
                 " pid$target:a.out:lo:entry, pid$target:a.out:_lo:entry { @[probefunc] = count(); }",
                 "-n", 'END { printa("%s %@d\\n", @); }', "-c", exe)  # fmt: skip
    assert (r.status, r.out) == (0, "15\n_lo 6\ngo 6\n\n"), r.err
    r = pydtrace("-l", "-n", "pid$target:a.out:*o:entry", "-c", exe)
    assert [ln.split()[3] for ln in r.out.splitlines()[1:]] == ["go", "_lo"]


LOCKED = r"""
__attribute__((naked)) void locked(int *p) { __asm__("lock incl (%rdi)\n\tret"); }
int main(void) { int n = 0; locked(&n); return n - 1; }
"""


def test_a_function_starting_with_a_locked_instruction(tmp_path: Path) -> None:
    """uprobes refuse a lock prefix: no entry or return probe (an error when
    named alone), its other instructions still probed."""
    exe = build(tmp_path, "locked", LOCKED)
    r = pydtrace("-l", "-n", "pid$target:a.out:locked:", "-c", exe)
    names = [ln.split()[-1] for ln in r.out.splitlines()[1:]]
    assert names == [o for o in _objdump_offsets(exe, "locked") if o != "0"], r.out
    assert names[0] == "3"  # ret, after the 3 bytes of lock incl (%rdi)
    r = pydtrace("-n", "pid$target:a.out:locked:entry", "-c", exe)
    assert (r.status, r.err) == (1, "pydtrace: invalid probe specifier pid$target:a.out:locked:"
                                 "entry: locked`locked: uprobes cannot trace its first "
                                 "instruction, where entry probes sit\n")  # fmt: skip
    r = pydtrace("-n", "pid$target:a.out:locked:0", "-c", exe)
    assert r.status == 1 and r.err.endswith("uprobes cannot trace the instruction at offset 0x0\n")
    r = pydtrace("-q", "-n", 'pid$target:a.out:locked:3 { printf("ret\\n"); }', "-c", exe)
    assert (r.status, r.out) == (0, "ret\n\n"), r.err


def test_dash_function_names_an_address(prog: str) -> None:
    """pid$target::-:ADDR: the executable's link-time address (nm's), as dtrace."""
    nm = subprocess.run(["nm", prog], capture_output=True, text=True, check=True).stdout
    addr = next(ln.split()[0] for ln in nm.splitlines() if ln.endswith(" add3")).lstrip("0")
    r = pydtrace("-q", "-n", f'pid$target::-:{addr} {{ printf("%s:%s:%s %d\\n", probemod,'
                 " probefunc, probename, arg0); }", "-c", f"{prog} 2")  # fmt: skip
    assert r.status == 0, r.err
    # the program's own line and ours share the pipe: their order is not fixed
    assert sorted(r.out.split("\n")) == ["", "", "51", f"prog:-:{addr} 0", f"prog:-:{addr} 1"]


def test_a_script_command_probes_its_interpreter(tmp_path: Path, prog: str) -> None:
    """-c on a #! script: a.out is the program exec runs, its interpreter."""
    script = tmp_path / "viaprog"
    script.write_text(f"#!{prog}\n")
    script.chmod(0o755)
    r = pydtrace("-q", "-n", 'pid$target:a.out:many:entry { printf("%s %d\\n", probemod, arg0); }',
                 "-c", str(script))  # fmt: skip
    assert r.status == 0, r.err
    assert sorted(r.out.split("\n")) == ["", "", "36", "prog 1"]  # either order


SIGNALLED = r"""
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/ioctl.h>
int __attribute__((noinline)) go(int x) { return x; }
static void handle(int sig) { go(sig * 100); exit(0); }
int main(void) { signal(SIGUSR1, handle); for (;;) { ioctl(-1, -1, NULL); usleep(100); } }
"""


def test_raise_and_every_probe_enabled_at_once(tmp_path: Path) -> None:
    """raise() on the eBPF engine (bpf_send_signal_thread) from a syscall probe of
    a running process, whose handler calls go(): go's probe must already be there,
    though it attaches after the syscall's (no clause runs until all have)."""
    exe = build(tmp_path, "signalled", SIGNALLED)
    for _ in range(3):  # the race it guards against lost most runs
        p = subprocess.Popen([exe])
        try:
            time.sleep(0.1)
            r = pydtrace("-w", "-q", "-n", "syscall::ioctl:return /pid == $target/ { raise(SIGUSR1); }",
                         "-n", 'pid$target:a.out:go:entry { printf("go %d\\n", arg0); exit(0); }',
                         "-p", str(p.pid))  # fmt: skip
            assert (r.status, r.out) == (0, "go 1000\n\n"), r.err
            assert p.wait(timeout=10) == 0  # the handler ran: SIGUSR1 did not kill it
        finally:
            p.kill()
            p.wait()
    prog = build(tmp_path, "prog", PROG)
    r = pydtrace("-w", "-q", "-n", "pid$target:a.out:add3:entry { raise(arg0 ? 65 : 0); }",
                 "-c", f"{prog} 2")  # fmt: skip
    assert (r.status, r.out) == (0, "51\n\n"), r.err  # no signal was sent
    assert r.err.count("illegal operation") == 2, r.err


def test_ctrl_c_while_attaching(prog: str) -> None:
    """SIGINT to pydtrace while uprobes attach (sent once, by the first
    attachment, which the agent makes, as a Ctrl-C would land): attaching stops, the held
    -c command is killed before it execs (it prints nothing), END runs, exit 0."""
    code = (
        "import os, runpy, signal, sys\n"
        "from pydtrace.engines.ebpf import perf\n"
        "PID = os.getpid()\n"
        "real = perf.attach_uprobe\n"
        "sent = []\n"
        "def attach(*a, **k):\n"
        "    r = real(*a, **k)\n"
        "    if not sent:\n"
        "        sent.append(os.kill(PID, signal.SIGINT))\n"
        "    return r\n"
        "perf.attach_uprobe = attach\n"
        "sys.argv = ['pydtrace'] + sys.argv[1:]\n"
        "runpy.run_module('pydtrace', run_name='__main__')\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    p = subprocess.run(
        [sys.executable, "-c", code, "-q", "-n", "pid$target:a.out:add3: { @ = count(); }",
         "-n", 'END { printf("end\\n"); }', "-c", f"{prog} 3"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert (p.returncode, p.stdout) == (0, "end\n\n"), p.stderr


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
