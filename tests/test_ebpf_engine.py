"""The eBPF engine on the real kernel: exact counts, arguments, strings,
aggregations printed exactly as the user-space engine prints them, faults,
and every fd released."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import threading
import time

import pytest

from conftest import both_engines, bpf_maps_ok, need, pydtrace
from pydtrace.session import Program, Session

KERNEL = bpf_maps_ok()


@pytest.fixture(autouse=True)
def _need_bpf() -> None:
    need(KERNEL, "BPF maps cannot be created here (root and bpf(2) needed)")


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def run_in_thread(src: str, action, **settings: object) -> tuple[str, str, int]:
    """Run `src` on the eBPF engine in this process; call action() once every
    probe is attached, then stop the engine and return (stdout, stderr, status)."""
    out, err = io.StringIO(), io.StringIO()
    opts = [("engine", "ebpf"), ("quiet", None), *settings.items()]
    s = Session([Program("n", src)], settings=opts, out=out, err=err, testing=True)
    s.compile()
    result: dict[str, object] = {}

    def go() -> None:
        try:
            result["status"] = s.run()
        except Exception as e:  # reported to the test below
            result["error"] = e

    t = threading.Thread(target=go)
    t.start()
    deadline = time.monotonic() + 20
    while getattr(s, "engine", None) is None or not s.engine.attached.is_set():
        assert t.is_alive() or "error" not in result, result.get("error")
        assert time.monotonic() < deadline, "engine did not attach"
        time.sleep(0.01)
    action()
    time.sleep(0.2)
    s.engine.stop()
    t.join(20)
    assert "error" not in result, result.get("error")
    return out.getvalue(), err.getvalue(), int(result["status"])  # type: ignore[arg-type]


def test_exact_syscall_count_and_no_fd_left_behind() -> None:
    before = fds()
    out, err, status = run_in_thread(
        f"syscall::getppid:entry /pid == {os.getpid()}/ {{ @n = count(); }}",
        lambda: [os.getppid() for _ in range(37)],
    )
    assert (out, err, status) == ("\n               37\n", "", 0)
    assert fds() == before


def test_syscall_arguments_errno_and_copyinstr() -> None:
    path = f"/nonexistent/pydtrace-{os.getpid()}"

    def touch() -> None:
        with pytest.raises(FileNotFoundError):
            open(path)

    out, _, _ = run_in_thread(
        f'syscall::openat:entry /pid == {os.getpid()}/ {{ printf("%s %s\\n", probefunc, copyinstr(arg1)); }}'
        f' syscall::openat:return /pid == {os.getpid()}/ {{ printf("%d %d %s\\n", arg0, errno, probename); }}',
        touch,
    )
    assert f"openat {path}\n-2 2 return\n" in out


def test_predicate_on_execname_and_tid() -> None:
    me = os.getpid()
    out, _, _ = run_in_thread(
        f'syscall::getpid:entry /execname != "no-such-comm" && tid == {threading.get_native_id()} && pid == {me}/'
        " { @[execname, probeprov] = count(); }",
        lambda: [os.getpid() for _ in range(3)],
    )
    comm = open("/proc/self/comm").read().strip()
    assert out.split() == [comm, "syscall", "3"]


def test_thread_locals_live_across_probes_of_one_thread() -> None:
    me = os.getpid()
    out, _, _ = run_in_thread(
        f"syscall::getppid:entry /pid == {me}/ {{ self->n++; }}"
        " syscall::getppid:return /self->n/ { @[self->n] = count(); }",
        lambda: [os.getppid() for _ in range(4)],
    )
    assert out.split() == ["1", "1", "2", "1", "3", "1", "4", "1"]


# Programs whose output must be byte-for-byte the same on both engines.
SAME = [
    'BEGIN { i = -7; u = 4000000000; c = (char)300; printf("%d %d %d %u %d %d\\n", i / 2, i % 3,'
    ' i >> 1, u * 3, c, (unsigned char)c); printf("%d %d %d\\n", i < u, -1 < 1u, 5 > 3 && 0 || 2); exit(3); }',
    "BEGIN { @q = quantize(0); @q = quantize(1); @q = quantize(-5); @q = quantize(1000);"
    " @l = lquantize(7, 0, 10, 2); @l = lquantize(-1, 0, 10, 2); @l = lquantize(100, 0, 10, 2);"
    " @a = avg(3); @a = avg(8); @mn = min(5); @mn = min(-2); @mx = max(5); @mx = max(9);"
    ' @s[1, "a"] = sum(10); @s[2, "b"] = sum(-3); exit(0); }',
    'BEGIN { this->x = 5; s = "abc"; t = "abd"; printf("%d %d %d %d %s\\n", s < t, s == "abc", s != t,'
    " t > s, s); @[s] = count(); @[t] = count(); @[s] = count(); printa(@); clear(@); printa(@); exit(0); }"
    " END { trace(this->x); }",
    "BEGIN { x = 1; if (x) { trace(1); } else { trace(2); } y = x++ + ++x; trace(y); x += 5; x <<= 2;"
    " trace(x); exit(0); }",
    'BEGIN { self->x = 5; self->y = self->x * 2; printf("%d %d\\n", self->x, self->y); self->x = 0;'
    " trace(self->x); self->x++; trace(self->x); exit(0); }",
    "BEGIN { @[1] = sum(5); @[2] = sum(7); @[3] = sum(1); trunc(@, 2); printa(@); exit(0); }",
    "BEGIN { z = 0; x = 1 / z; } BEGIN { trace(probename); exit(0); }",
    'tick-10ms /n++ == 3/ { printf("%d\\n", n); exit(0); }',
    # associative arrays (int and string keys), assigning 0 deletes, self-> and this-> strings
    'BEGIN { a[1, "x"] = 5; a[2, "y"] = 7; a[1, "x"] += 2; printf("%d %d %d\\n", a[1, "x"], a[2, "y"],'
    ' a[3, "z"]); a[2, "y"] = 0; trace(a[2, "y"]); exit(0); }',
    'BEGIN { self->s = "hello"; self->t[1] = "one"; self->t[2] = self->s; this->q = "tq";'
    ' printf("%s %s %s [%s] %s\\n", self->s, self->t[1], self->t[2], self->t[3], this->q); exit(0); }',
    'BEGIN { this->q = "tq"; s[this->q] = 3; s["zz"] = s[this->q] + 1; b[s["zz"]] = 9;'
    ' printf("%d %d %d %d\\n", s["tq"], s["zz"], b[s["zz"]], s["tq"] < s["zz"]);'
    ' @[s["zz"], this->q] = count(); exit(0); }',
    # a fault runs ERROR's clauses (arg1..arg5 as dtrace); a fault inside them is only counted
    'BEGIN { z = 0; x = 1 / z; trace(5); } BEGIN { trace(arg0); } ERROR { printf("%d %d %d %d %d\\n",'
    " arg0, arg1, arg2, arg4, arg5); @e[probename] = count(); } ERROR /arg4 == 4/ { z = 0; y = 1 / z; }"
    " END { trace(1); } BEGIN { exit(0); }",
    "BEGIN { @s = stddev(1); @s = stddev(5); @s = stddev(-3000000000); @s2[1] = stddev(7); @s2[1] = stddev(9);"
    " @l = llquantize(0, 10, 0, 3, 10); @l = llquantize(5, 10, 0, 3, 10); @l = llquantize(77, 10, 0, 3, 10);"
    " @l = llquantize(-250, 10, 0, 3, 10); @l = llquantize(123456, 10, 0, 3, 10);"
    " @l = llquantize(3000, 10, 0, 3, 10, 4); @m = llquantize(1000000, 2, 2, 20, 4);"
    " @m = llquantize(6, 2, 2, 20, 4); exit(0); }",
    'BEGIN { x = "abc"; printf("%d %d %d %d\\n", x == "abc", x < "abd", "abd" < x, x != "ab"); exit(0); }',
    # deeper than the three temporary registers: spilled to the BPF stack
    "BEGIN { a = 100; b = 7; c = 50; d = 900; e = 8; f = 3; g = 2; trace(((a+(b*(c-(d/(e+1)))))+f));"
    " trace((a*(b+(c*(d-(e*(f+(g*(a-b))))))))/(f+(g*(e-(d%(c+1))))));"
    " x = (a > b) ? (c*(d+(e*(f-g)))) : 0; trace(x); trace(a && (b*(c+(d*(e-f)))) ^^ 0);"
    " @[a+(b*(c-(d/(e+1))))] = sum((a*(b+(c*(d-e))))); z = 0; trace(a+(b*(c-(d/z)))); } BEGIN { exit(0); }",
]


@pytest.mark.parametrize("src", SAME)
def test_same_output_as_the_user_engine(src: str) -> None:
    e, u = both_engines("-n", src)
    strip = lambda t: "\n".join(x.split(" at BPF pc")[0] for x in t.splitlines())  # noqa: E731
    assert (e.status, e.out, strip(e.err)) == (u.status, u.out, strip(u.err))
    assert e.out.strip() or e.err.strip()


def test_fault_record_names_the_clause() -> None:
    r = pydtrace("-q", "-x", "engine=ebpf", "-n", "BEGIN { z = 0; x = 1 / z; } BEGIN { exit(0); }")
    assert r.status == 0
    assert r.err.startswith(
        "pydtrace: error in dt_clause_0 for probe ID 1 (dtrace:::BEGIN): divide-by-zero at BPF pc "
    )


def test_lowering_error_is_a_clear_message() -> None:
    r = pydtrace("-x", "engine=ebpf", "-n", 'BEGIN { trace(strtoll("12")); }')
    assert r.status == 1
    assert r.err.endswith(
        "pydtrace: could not enable tracing: the eBPF engine cannot compile strtoll() yet (line 1)\n"
    )


class FakeTargets:
    """The -c/-p contract (targets=): one child, watched through its pidfd."""

    def __init__(self, engine_box: dict) -> None:
        import subprocess

        self.box = engine_box
        self.child = subprocess.Popen(["sleep", "0.3"])
        self.fd = os.pidfd_open(self.child.pid)
        self.live = 1
        self.calls: list[str] = []
        self.targets: list[object] = []  # no held child: nothing waits for an exec

    def release(self) -> None:
        self.calls.append(f"release attached={self.box['engine'].attached.is_set()}")

    def fds(self) -> list[int]:
        return [self.fd] if self.live else []

    def gone(self, fd: int) -> bool:
        self.calls.append(f"gone {fd == self.fd}")
        self.child.wait()
        os.close(self.fd)
        self.live = 0
        return True


def test_targets_are_released_after_attach_and_end_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydtrace.engines.ebpf import engine as engine_mod

    box: dict = {}
    made: list[FakeTargets] = []

    class WithTargets(engine_mod.EbpfEngine):
        def __init__(self, *a: object, **k: object) -> None:
            box["engine"] = self
            made.append(FakeTargets(box))
            k.pop("targets", None)
            super().__init__(*a, targets=made[0], **k)  # type: ignore[arg-type]

    monkeypatch.setattr(engine_mod, "EbpfEngine", WithTargets)
    out, err = io.StringIO(), io.StringIO()
    s = Session([Program("n", "syscall::getppid:entry { @ = count(); } END { printf(\"end\\n\"); }")],
                settings=[("engine", "ebpf"), ("quiet", None)], out=out, err=err, testing=True)  # fmt: skip
    s.compile()
    t0 = time.monotonic()
    assert s.run() == 0
    assert time.monotonic() - t0 < 10
    assert made[0].calls == ["release attached=True", "gone True"]
    assert out.getvalue().startswith("end\n")


def test_wide_syscall_globs_name_each_syscall_and_give_args_and_errno() -> None:
    path = f"/nonexistent/pydtrace-raw-{os.getpid()}"
    me = threading.get_native_id()

    def work() -> None:
        for _ in range(3):
            os.getppid()
        with pytest.raises(FileNotFoundError):
            open(path)

    out, err, _ = run_in_thread(
        f'syscall:::entry /tid == {me} && (probefunc == "getppid" || probefunc == "openat")/'
        " { @[probefunc, probename] = count(); }"
        f' syscall:::entry /tid == {me} && probefunc == "openat"/ {{ printf("%s\\n", copyinstr(arg1)); }}'
        f' syscall:::return /tid == {me} && errno == 2/ {{ printf("%s %d %d\\n", probefunc, arg0, errno); }}',
        work,
    )
    assert err == ""
    assert out.splitlines()[:2] == [path, "openat -2 2"]
    assert out.split()[-6:] == ["openat", "entry", "1", "getppid", "entry", "3"]


def test_a_program_shared_by_syscall_tracepoints_gives_each_its_own_arguments() -> None:
    """getppid (no argument), kill (two) and openat (four) on one program,
    each with its own arguments, probefunc, clauses, return value and errno
    (the shared program reads each call's arguments with a helper: a direct
    read of the fourth would keep it off getppid's tracepoint)."""
    me = threading.get_native_id()
    gone = f"/nonexistent/pydtrace-shared-{os.getpid()}"

    def work() -> None:
        os.getppid()
        with pytest.raises(ProcessLookupError):
            os.kill(0x7FFFFFF0, 0)
        with pytest.raises(FileNotFoundError):
            open(gone)

    src = (
        f"syscall::getppid:entry, syscall::kill:entry, syscall::openat:entry /tid == {me}/"
        ' { printf("%s %d %d %d %d\\n", probefunc, (int)arg0 == -100 ? 1 : arg0, arg1 == 0, arg2, arg4); }'
        f' syscall::openat:entry /tid == {me}/ {{ printf("%s\\n", copyinstr(arg1)); }}'
        f" syscall::getppid:return, syscall::kill:return, syscall::openat:return /tid == {me}/"
        ' { printf("%s %s %d %d\\n", probefunc, probename, arg0 < 0 ? arg0 : 1, errno); }'
    )
    out, err, status = run_in_thread(src, work)
    assert (err, status) == ("", 0)
    assert out.splitlines() == [  # (the blank line: the run was stopped, as by Ctrl-C)
        "getppid 0 1 0 0",
        "getppid return 1 0",
        f"kill {0x7FFFFFF0} 1 0 0",
        "kill return -3 3",
        "openat 1 0 524288 0",
        gone,
        "openat return -2 2",
        "",
    ]
    from pydtrace.engines.ebpf.codegen import compile_program

    checked = Session([Program("n", src)])
    checked.compile()
    progs = compile_program(checked.checked, checked.options).progs
    assert sorted((p.attach[:2], sorted(p.attach[2])) for p in progs) == [
        (("tracepoint", "syscalls"), ["sys_enter_getppid", "sys_enter_kill", "sys_enter_openat"]),
        (("tracepoint", "syscalls"), ["sys_exit_getppid", "sys_exit_kill", "sys_exit_openat"]),
    ]


def test_a_probe_firing_in_an_interrupt_leaves_the_interrupted_firing_whole() -> None:
    """A syscall's program runs with interrupts enabled; a wakeup's, fired
    in a timer interrupt on the same CPU, ran in the middle of it. With one
    scratch frame per CPU for all programs, the two clobbered each other's
    records (lines lost or mixed, and a record too short for its clause
    ended the run with a traceback). Each program has its frame now."""
    calls = 20000
    caller = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, "-c",
         f"import os, sys\nsys.stdin.read(1)\nfor _ in range({calls}): os.getppid()\n"],
        stdin=subprocess.PIPE,
    )  # fmt: skip
    sleeper = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c",
                                "import time\nwhile True: time.sleep(0.00005)\n"])  # fmt: skip
    s = "abcdefghijklmnopqrstuvwxyz0123456789" * 2
    src = (
        f'syscall::getppid:entry /pid == {caller.pid}/ {{ this->s = "{s}";'
        ' this->n = strlen(this->s) + strlen(strjoin(this->s, this->s)) + strlen(strjoin(this->s, "x"));'
        ' this->m = strlen(strjoin(this->s, this->s)) + strlen(strjoin(this->s, "y"));'
        ' printf("A %d %d %d %d\\n", 1, this->n, this->m, 4); }'
        ' sched:::enqueue /cpu == 0/ { printf("B %d %d %s\\n", 7, 8, "nested"); }'
    )

    def run() -> None:
        assert caller.stdin is not None
        caller.stdin.write(b"g")
        caller.stdin.close()
        assert caller.wait(60) == 0

    try:
        out, err, status = run_in_thread(src, run, bufsize="64m")
    finally:
        for p in (caller, sleeper):
            p.kill()
            p.wait()
    assert (err, status) == ("", 0)
    lines = out.splitlines()
    a = [x for x in lines if not x.startswith("B ")]
    b = [x for x in lines if x.startswith("B ")]
    assert a[:-1] == ["A 1 289 217 4"] * calls and a[-1] == ""
    assert set(b) == {"B 7 8 nested"} and len(b) > 100  # the wakeups did fire meanwhile


def test_ppid_progenyof_curthread() -> None:
    out, err, _ = run_in_thread(
        f'BEGIN {{ printf("%d %d %d %d %d %d\\n", ppid, progenyof(pid), progenyof({os.getppid()}),'
        f" progenyof(1), progenyof(0), curthread != 0); }}",
        lambda: None,
    )
    assert (out, err) == (f"{os.getppid()} 1 1 1 0 1\n\n", "")


def test_system_and_freopen_records(tmp_path) -> None:
    out_file = tmp_path / "f.txt"
    src = (
        'BEGIN { system("echo sys %d %s", 7, "x"); printf("a\\n"); '
        f'freopen("{out_file}"); printf("b %d\\n", 2); freopen(""); printf("c\\n"); exit(0); }}'
    )
    r = pydtrace("-q", "-w", "-x", "engine=ebpf", "-n", src)
    assert (r.status, r.out, r.err) == (0, "sys 7 x\na\nc\n\n", "")
    assert out_file.read_text() == "b 2\n"


def test_system_in_begin_runs_after_the_probes_are_enabled() -> None:
    # dtrace consumes BEGIN's records once every probe is enabled: the command's
    # own syscalls are seen (dtrace-utils variables/bvar/tst.probefunc.d)
    src = 'BEGIN { system("sleep 0.1"); } syscall::*sleep:entry { trace(probefunc); exit(0); }'
    r = pydtrace("-q", "-w", "-x", "engine=ebpf", "-n", src, timeout=20)
    assert (r.status, r.out, r.err) in ((0, "clock_nanosleep\n", ""), (0, "nanosleep\n", ""))


def _busy(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_profile_args_are_the_kernel_pc_or_the_user_pc() -> None:
    # arg0 = the kernel pc when the CPU was in the kernel (idle included), else 0;
    # arg1 = the user pc when it was in user mode, else 0 (from the sampled pt_regs)
    out, err, status = run_in_thread(
        "profile-997 { @[(arg0 != 0 && arg1 == 0 && (uint64_t)arg0 >= 0xffff800000000000) ? 1"
        " : (arg1 != 0 && arg0 == 0 && (uint64_t)arg1 < 0x800000000000) ? 2 : 3] = count(); }"
        ' END { printa("%d\\n", @); }',
        lambda: _busy(0.5),
    )
    kinds = sorted(int(x) for x in out.split())
    assert (kinds, err, status) == ([1, 2], "", 0)


def test_dereferencing_a_bad_address_faults_into_error() -> None:
    src = (
        "BEGIN { x = 1; } BEGIN { trace(*(int *)0); } "
        'BEGIN { printf("after %d\\n", *(char *)8 + 1); } '
        'ERROR { printf("%d %d %d %d %d\\n", arg1, arg2, arg4, arg5, x); } BEGIN { exit(0); }'
    )
    r = pydtrace("-q", "-x", "engine=ebpf", "-n", src)
    assert (r.status, r.out) == (0, "1 1 1 0 1\n1 2 1 8 1\n\n")
    lines = [x.split(" at BPF pc")[0] for x in r.err.splitlines()]
    assert lines == [
        "pydtrace: error in dt_clause_1 for probe ID 1 (dtrace:::BEGIN): invalid address (0x0)",
        "pydtrace: error in dt_clause_2 for probe ID 1 (dtrace:::BEGIN): invalid address (0x8)",
    ]


# --- limits and runtime behaviour (engineer C, session 3) -------------------------------
def _many_actions() -> str:
    """70 unconditional actions (one shared mask bit) around actions inside `if`
    (one bit each), some of which do not run."""
    body = " ".join(f'printf("%d ", {i});' for i in range(70))
    conds = " ".join(f"if (x == {i % 3}) {{ trace({i}); }}" for i in range(10))
    return f'BEGIN {{ x = 1; {body} {conds} printf("\\n"); trace(-1); exit(0); }}'


def _many_aggs() -> str:
    """40 aggregations (more than AGG_OWN_MAPS: they share maps, one per value
    size), with int, string and tuple keys, printa/clear/trunc on a few."""
    funcs = ["count()", "sum({})", "max({})", "quantize({})", "avg({})"]
    stmts = []
    for n in range(40):
        key = ["[{}]", '["k"]', '[{}, "t"]', ""][n % 4]
        stmts.append(f"@a{n}{key.format('i')} = {funcs[n % 5].format(n)};")
        stmts.append(f"@a{n}{key.format(7)} = {funcs[n % 5].format(3)};")
    return (
        "BEGIN { i = 2; " + " ".join(stmts) + " printa(@a5); clear(@a1); trunc(@a2, 1);"
        " printa(@a1); printa(@a2); exit(0); }"
    )


def _long_clause() -> str:
    """One clause well past the 32K-slot reach of a BPF jump (islands), with
    dynamic-variable lookups (their drops jump to the clause end) and a late fault
    (to the fault block) that ERROR sees."""
    stmts = " ".join(f"a[{i}] = a[{i - 1}] + {i}; b[{i % 7}] += a[{i}];" for i in range(1, 300))
    return (
        f'BEGIN {{ a[0] = 1; {stmts} printf("%d %d\\n", a[299], b[3]); z = 0; x = 1 / z; }}'
        ' ERROR { printf("fault %d\\n", arg4); } BEGIN { exit(0); }'
    )


SAME_LIMITS = [
    _many_actions(),
    _many_aggs(),
    _long_clause(),
    # ERROR clauses with no fault anywhere (never compiled) and BEGIN's byte count
    "BEGIN { trace(1); } ERROR { trace(2); } BEGIN { exit(0); }",
    # nested subscripts: each level has its own key buffer
    'BEGIN { a[1, 2] = 3; a[3, 2] = 1; b[3] = 2; printf("%d\\n", a[1, a[3, b[a[3, 2] + 2]]]);'
    " exit(0); }",
    # a small aggsize: the map holds one entry, new keys are aggregation drops
    '#pragma D option aggsize=512\n#pragma D option strsize=200\nBEGIN { @["a"] = count();'
    ' @["b"] = count(); @["c"] = count(); exit(0); }',
]


@pytest.mark.parametrize("src", SAME_LIMITS)
def test_limits_give_the_same_output_as_the_user_engine(src: str, tmp_path) -> None:
    script = tmp_path / "t.d"
    script.write_text(src + "\n")
    e = pydtrace("-q", "-x", "engine=ebpf", "-s", str(script), timeout=60)
    u = pydtrace("-q", "-x", "engine=ptrace", "-s", str(script), timeout=60)

    def strip(t: str) -> str:  # the pc and the CPU BEGIN ran on differ
        return re.sub(r"on CPU \d+", "on CPU #", "\n".join(
            x.split(" at BPF pc")[0] for x in t.splitlines()))  # fmt: skip

    assert (e.status, e.out, strip(e.err)) == (u.status, u.out, strip(u.err))
    assert e.out.strip()


def test_timestamp_is_read_once_per_firing() -> None:
    src = (
        "inline uint64_t now = timestamp; BEGIN { t = timestamp; w = walltimestamp; x = 0;"
        ' x += 1; x += 2; x += 3; printf("%d %d %d %d\\n", timestamp - t, now - t,'
        " walltimestamp - w, walltimestamp > 1000000000000000000); }"
        ' tick-10ms /n++ < 2/ { printf("%d %d\\n", timestamp - now, timestamp > t); }'
        " tick-10ms /n >= 2/ { exit(0); }"
    )
    r = pydtrace("-q", "-x", "engine=ebpf", "-n", src)
    assert (r.status, r.out) == (0, "0 0 0 1\n0 1\n0 1\n\n"), r.err


def test_rand_gives_32_random_bits() -> None:
    r = pydtrace("-q", "-x", "engine=ebpf", "-n",
                 'BEGIN { i = 0; } tick-1ms /i++ < 20/ { printf("%d\\n", rand()); }'
                 " tick-1ms /i >= 20/ { exit(0); }")  # fmt: skip
    values = [int(x) for x in r.out.split()]
    assert r.status == 0 and len(values) == 20, r.err
    assert len(set(values)) > 15 and all(-(1 << 31) <= v < 1 << 31 for v in values)


def test_begin_may_leave_at_most_bufsize_bytes() -> None:
    # each record holds two 2049-byte strings: 15 fit in 64k, the 16th is a drop
    clauses = " ".join(f'BEGIN {{ trace("{i}a"); trace("{i}b"); }}' for i in range(16))
    src = (
        f"#pragma D option strsize=2k\n#pragma D option bufsize=64k\n{clauses} BEGIN {{ exit(0); }}"
    )
    r = pydtrace("-q", "-x", "engine=ebpf", "-x", "droptags", "-n", src)
    assert r.status == 0
    assert "14a" in r.out and "15a" not in r.out
    assert "[DTRACEDROP_PRINCIPAL] 1 drop on CPU " in r.err


def test_begin_records_fit_the_ring_sized_for_them() -> None:
    # the default bufsize holds them all: the ring sized from the program
    # (engines/ebpf/maps.ring_size) must too, with no drop
    clauses = " ".join(f'BEGIN {{ printf("%s %s\\n", "{i}a", "{i}b"); }}' for i in range(40))
    src = f"#pragma D option strsize=2k\n{clauses} BEGIN {{ exit(0); }}"
    r = pydtrace("-q", "-x", "engine=ebpf", "-n", src)
    assert (r.status, r.err) == (0, "")
    assert r.out == "".join(f"{i}a {i}b\n" for i in range(40)) + "\n"


def test_statusrate_delays_noticing_exit() -> None:
    src = (
        "tick-100ms /n++ == 2/ { exit(0); ts = timestamp; }"
        ' END { printf("%d\\n", (timestamp - ts) > 500000000); }'
    )
    r = pydtrace("-q", "-x", "engine=ebpf", "-x", "statusrate=1sec", "-n", src)
    assert (r.status, r.out) == (0, "1\n\n"), r.err


def test_the_ring_made_while_compiling_is_the_one_used_or_let_go() -> None:
    """maps.RingAhead: the ring buffer made on a thread while the program
    compiles is the engine's ring when the program's ring has its size; a
    program whose ring the compiler bounds (BEGIN and END only) gets a smaller
    ring of its own, and the one made ahead is closed. Nothing stays open."""
    from types import SimpleNamespace

    from pydtrace.engines.ebpf.engine import EbpfEngine
    from pydtrace.engines.ebpf.maps import RingAhead, ring_size

    before = fds()
    default = ring_size(None)
    for src, used in (("syscall::getppid:entry { trace(pid); }", True),
                      ("BEGIN { trace(1); exit(0); }", False)):  # fmt: skip
        s = Session([Program("n", src)])
        s.compile()
        ahead = RingAhead(default)
        ahead._thread.join()
        made = ahead.map
        assert made is not None and made.max_entries == default
        engine = EbpfEngine(s.checked, SimpleNamespace(), s.options, ring_ahead=ahead)
        try:
            engine._open()
            ring = engine.maps["records"]
            assert (ring is made, ring.max_entries == default) == (used, used), src
            assert ahead.map is None
        finally:
            engine.close()
        assert fds() == before, src
    # a program the code generator refuses, and one that never reaches the
    # engine: the ring is let go
    from pydtrace.engines.ebpf.errors import LoweringError

    s = Session([Program("n", "sched:::on-cpu { @[ustack()] = count(); }")])
    s.compile()
    with pytest.raises(LoweringError):
        EbpfEngine(s.checked, SimpleNamespace(), s.options, ring_ahead=RingAhead(default))
    assert fds() == before
    ahead = RingAhead(default)
    ahead.close()
    assert fds() == before


# one getppid every 0.5 ms, 300 in all; then 0.3 s idle and one more
SPACED_CALLS = """
import os, time
for _ in range(300):
    os.getppid()
    time.sleep(0.0005)
time.sleep(0.3)
os.getppid()
"""


@pytest.mark.parametrize("switchrate, gap", [(None, 0.05), ("100hz", 0.01)])
def test_records_that_flow_are_drained_in_batches(monkeypatch, switchrate, gap) -> None:
    """Woken for each record (the kernel wakes a consumer that has caught up),
    the engine cost the traced program a wakeup and a pass of its loop per
    event: 150 us per exec under execsnoop. While records flow it drains once
    per 1/switchrate when that is set, as dtrace reads its buffers, else per
    next_gap(): DRAIN_GAP_MAX (50 ms) at this rate (2,000 records a second at
    most, a batch far under DRAIN_BATCH); a record after an idle spell still
    comes out at once."""
    import sys

    import pydtrace as api
    from pydtrace.engines.ebpf import engine, ringbuf

    assert (engine.DRAIN_GAP, engine.DRAIN_GAP_MAX, engine.DRAIN_BATCH) == (0.005, 0.05, 128)
    passes: list[tuple[int, int]] = []  # (monotonic ns, records) of each drain with records
    real = ringbuf.RingBuffer.drain

    def drain(self, callback, limit=None):
        n = real(self, callback, limit)
        if n:
            passes.append((time.monotonic_ns(), n))
        return n

    monkeypatch.setattr(ringbuf.RingBuffer, "drain", drain)
    options = {"engine": "ebpf", "quiet": True}
    if switchrate:
        options["switchrate"] = switchrate
    r = api.trace(
        "syscall::getppid:entry /pid == $target/ { trace(timestamp); }",
        command=[sys.executable, "-c", SPACED_CALLS],
        options=options,
    )
    assert r.returncode == 0 and len(r.records) == 301
    assert sum(n for _, n in passes) == 301
    apart = [b[0] - a[0] for a, b in zip(passes, passes[1:])]
    assert min(apart) >= gap * 1e9 * 0.95, (len(passes), min(apart))
    # the last record, alone after 0.3 s idle, is drained at once (not a gap later)
    assert passes[-1][1] == 1
    assert passes[-1][0] - r.records[-1].values[0] < 0.09e9


def test_a_command_that_ends_between_two_drains_ends_the_run_at_once(monkeypatch) -> None:
    """The wait between drains ends when a -c command ends, not a gap later
    (here a gap of 5 s: the run would last that long after its last record)."""
    import sys

    import pydtrace as api
    from pydtrace.engines.ebpf import engine

    monkeypatch.setattr(engine, "DRAIN_GAP_MAX", 5.0)
    t0 = time.monotonic()
    r = api.trace(
        "syscall::getppid:entry /pid == $target/ { trace(timestamp); }",
        command=[sys.executable, "-c", "import os, time\nfor i in range(5):\n"
                 "    os.getppid(); time.sleep(0.05)\n"],
        options={"engine": "ebpf", "quiet": True},
    )  # fmt: skip
    took = time.monotonic() - t0
    assert r.returncode == 0 and len(r.records) == 5
    assert took < 3, took


def test_the_gap_between_drains_shrinks_as_records_come_faster() -> None:
    """next_gap: 50 ms while a batch stays small; under a flood, as long as
    DRAIN_BATCH records (or a quarter of the ring) take to come, never under 5
    ms: a Ctrl-C never finds more than about a batch still to print."""
    from pydtrace.engines.ebpf.engine import next_gap

    ring = 8 << 20  # the default on two CPUs
    assert next_gap(1, 64, 0.1, ring) == 0.05  # one record after an idle spell
    assert next_gap(60, 60 * 5600, 0.05, ring) == 0.05  # execsnoop: 1,200 execs a second
    assert next_gap(400, 400 * 64, 0.05, ring) == pytest.approx(0.016)  # 8,000 a second
    assert next_gap(100_000, 100_000 * 64, 0.05, ring) == 0.005  # a flood: the floor
    # few records but big ones: a quarter of the ring (2 MiB) at 5 MiB per 50 ms
    assert next_gap(10, 5 << 20, 0.05, ring) == pytest.approx(0.02)


def test_a_record_too_short_for_its_clause_is_counted_not_a_traceback() -> None:
    """The consumer never trusts a record's length: one shorter than its
    clause's layout (the kernel's, garbled) is counted and reported, and
    the records after it are printed."""
    import struct
    from types import SimpleNamespace

    from pydtrace.engines.ebpf.engine import EbpfEngine

    s = Session([Program("n", 'syscall::getppid:entry { printf("%d %d\\n", 1, arg0); }')])
    s.compile()
    said: list[tuple[str, int]] = []
    texts: list[str] = []
    consumer = SimpleNamespace(
        drop=lambda kind, n, cpu=None: said.append((kind, n)),
        out=SimpleNamespace(write=texts.append),
        prints_text_only=lambda: True,
        flush=lambda: None,
    )
    engine = EbpfEngine(s.checked, consumer, s.options)
    engine._fast = engine._fast_paths()
    (probe,) = [p for p in engine.compiled.probes.values() if p.function == "getppid"]
    (clause,) = engine.compiled.records
    lay = engine.compiled.records[clause]
    head = struct.pack("<IIIIQ", 1, probe.id, clause, 0, lay.full)
    whole = head + struct.pack("<qq", 1, 42).ljust(lay.size - 24, b"\0")
    # the ring, as ringbuf.drain hands records out: its position passes a
    # record before the callback's error goes up
    waiting = iter([whole, head + b"\0" * 4, head[:10], whole])

    def drain(callback) -> int:
        n = 0
        for buf in waiting:
            n += 1
            callback(memoryview(buf))
        return n

    engine.ring = SimpleNamespace(drain=drain, position=lambda: 0)
    engine.drain()
    engine.report_drops()
    assert (texts, said) == (["1 42\n1 42\n"], [("PYDTRACEDROP_SHORT", 2)])
