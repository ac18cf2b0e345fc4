"""stack(), ustack() and the symbol actions on the eBPF engine: frames of
programs of our own, resolved through their ELF files (with and without
PIE, in a shared library of our own), as records and as aggregation keys,
and resolved after the process has exited."""

from __future__ import annotations

import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from conftest import bpf_maps_ok, need, pydtrace

CHAIN = """
    #include <unistd.h>
    __attribute__((noinline)) void inner(void) { getppid(); }
    __attribute__((noinline)) void outer(void) { inner(); }
    int main(void) {
        for (int i = 0; i < 3; i++) outer();
        usleep(200000);  /* still running when the first records are read */
        return 0;
    }
"""


@pytest.fixture(autouse=True)
def _kernel() -> None:
    need(bpf_maps_ok(), "needs root and bpf(2)")
    need(shutil.which("cc") is not None, "no C compiler")


def cc(tmp: Path, name: str, source: str, *flags: str) -> str:
    src = tmp / f"{name}.c"
    src.write_text(textwrap.dedent(source))
    exe = tmp / name
    subprocess.run(["cc", "-O0", "-fno-omit-frame-pointer", *flags, "-o", str(exe), str(src)],
                   check=True)  # fmt: skip
    return str(exe)


def names(text: str) -> list[str]:
    """The frames of printed stacks without their offsets."""
    return [re.sub(r"\+0x[0-9a-f]+$", "", x.strip()) for x in text.splitlines() if "`" in x]


GETPPID = "syscall::getppid:entry /pid == $target/"
# a frame-pointer walk from inside getppid (a leaf without a frame of its own)
# finds its caller's caller first: inner's frame is the one skipped
FRAMES = ["libc.so.6`getppid", "{0}`outer", "{0}`main", "libc.so.6`__libc_start_call_main"]


@pytest.mark.parametrize("pie", ["-no-pie", "-pie"])
def test_ustack_as_a_key_resolves_after_the_process_exited(tmp_path: Path, pie: str) -> None:
    exe = cc(tmp_path, "chain", CHAIN, pie)
    r = pydtrace("-q", "-c", exe, "-n", f"{GETPPID} {{ @[ustack()] = count(); }}")
    assert r.status == 0, r.err
    lines = r.out.splitlines()
    assert lines[:2] == ["", ""]
    assert names(r.out)[:4] == [f.format("chain") for f in FRAMES]
    assert all(x.startswith(" " * 14 + x.strip()) for x in lines[2:6])
    assert lines[-1] == "                3"


def test_ustack_and_stack_records(tmp_path: Path) -> None:
    exe = cc(tmp_path, "chain", CHAIN, "-pie")
    r = pydtrace("-q", "-c", exe, "-n", f"{GETPPID} {{ ustack(); stack(); exit(0); }}")
    assert r.status == 0, r.err
    user, kernel = r.out.split("\n\n")[:2]
    assert names(user)[:4] == [f.format("chain") for f in FRAMES]
    k = names(kernel)
    assert "vmlinux`do_syscall_64" in k and k[-1].startswith("vmlinux`entry_SYSCALL_64")
    assert all(
        re.fullmatch(r" {14}vmlinux`\w[\w.]*\+0x[0-9a-f]+", x) for x in kernel.splitlines() if x
    )


SYSCALL_FRAMES = ["vmlinux`do_syscall_64", "vmlinux`entry_SYSCALL_64_after_hwframe"]


@pytest.mark.parametrize(
    "probe", [GETPPID, 'syscall::*:entry /pid == $target && probefunc == "getppid"/']
)
def test_kernel_stacks_start_at_the_probe_site(tmp_path: Path, probe: str) -> None:
    """No frame of the probe machinery (the BPF program, bpf_trace_run2,
    perf_syscall_enter...) in stack(), its frame count or caller: from the
    syscall's own tracepoint and from the raw_syscalls program alike."""
    exe = cc(tmp_path, "chain", CHAIN)
    r = pydtrace("-q", "-c", exe, "-n",
                 f"{probe} {{ stack(); stack(1); func(caller); @[stack(2)] = count(); exit(0); }}")  # fmt: skip
    assert r.status == 0, r.err
    full, one, rest = r.out.split("\n\n")[:3]
    assert names(full) == SYSCALL_FRAMES
    assert names(one) == SYSCALL_FRAMES  # stack(1), then func(caller)
    assert one.splitlines()[1] == "  %-50s" % SYSCALL_FRAMES[1]
    assert names(rest) == SYSCALL_FRAMES and rest.splitlines()[-1] == "                1"


@pytest.mark.parametrize(
    "probe", [GETPPID, 'syscall::*:entry /pid == $target && probefunc == "getppid"/']
)
def test_kernel_stacks_start_at_the_probe_site_beside_another_tracer(
    tmp_path: Path, probe: str
) -> None:
    """With a second program on sys_enter (another tracer's, here a second
    pydtrace), the kernel runs the tracepoint's probes through
    __traceiter_sys_enter: machinery too, never a frame of stack() or caller."""
    exe = cc(tmp_path, "chain", CHAIN)
    import os
    import sys

    from conftest import ROOT

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    other = subprocess.Popen([sys.executable, "-m", "pydtrace", "-n", "syscall:::entry /0/ {}"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    try:
        assert "matched" in (other.stderr.readline() if other.stderr else "")  # attached
        r = pydtrace("-q", "-c", exe, "-n", f"{probe} {{ stack(); func(caller); exit(0); }}")
    finally:
        other.terminate()
        other.wait(timeout=30)
    assert r.status == 0, r.err
    assert names(r.out) == [*SYSCALL_FRAMES, SYSCALL_FRAMES[1]]
    assert r.out.splitlines()[-1] == "  %-50s" % SYSCALL_FRAMES[1]  # func(caller)


def test_caller_of_a_scheduler_tracepoint(tmp_path: Path) -> None:
    exe = cc(tmp_path, "chain", CHAIN)
    r = pydtrace("-q", "-c", exe, "-n",
                 "syscall::clock_nanosleep:entry /pid == $target/ { self->in = 1; }"
                 " syscall::clock_nanosleep:return /pid == $target/ { self->in = 0; }"
                 " sched:::sleep /self->in/ { @s[stack(2)] = count(); @c[func(caller)] = count(); }"
                 ' END { printa("%k%@d\\n", @s); printa("%a %@d\\n", @c); }')  # fmt: skip
    assert r.status == 0, r.err
    # usleep: __schedule holds the tracepoint, schedule called it
    out = re.sub(r"\+0x[0-9a-f]+", "", r.out)
    assert out == (
        f"\n{' ' * 14}vmlinux`__schedule\n{' ' * 14}vmlinux`schedule\n1\nvmlinux`schedule 1\n\n"
    ), r.out


def test_ucaller_and_uregs(tmp_path: Path) -> None:
    exe = cc(tmp_path, "chain", CHAIN)
    r = pydtrace("-q", "-c", exe, "-n",
                 f"{GETPPID} {{ ustack(2); uaddr(uregs[R_PC]); uaddr(ucaller); exit(0); }}")  # fmt: skip
    assert r.status == 0, r.err
    lines = r.out.splitlines()
    frames = [x.strip() for x in lines[1:3]]
    assert names("\n".join(frames)) == ["libc.so.6`getppid", "chain`outer"]
    # the first frame is where the thread is (its pc), ucaller the second
    assert lines[3] == "  %-50s  %-50s" % tuple(frames)


@pytest.mark.parametrize("engine", ["ebpf", "ptrace"])
def test_uregs_on_both_engines(tmp_path: Path, engine: str) -> None:
    exe = cc(tmp_path, "chain", CHAIN)
    r = pydtrace("-q", "-x", f"engine={engine}", "-c", exe, "-n",
                 f'{GETPPID} {{ printf("%d %d %d %d %d\\n", uregs[R_ERR], (long)uregs[R_RAX],'
                 " uregs[R_SP] > 0x700000000000, uregs[R_FS] > 0x700000000000, uregs[R_CS]); exit(0); }")  # fmt: skip
    assert r.status == 0, r.err
    # orig_ax: getppid's number; rax: -ENOSYS on entry; the stack and the TLS
    # base in user space (mmap's base is randomized over 2^40 bytes below
    # 0x7fff...: it may be under 0x7f0000000000); the 64-bit user code segment
    assert r.out == "110 -38 1 1 51\n\n"


@pytest.mark.parametrize("engine", ["ebpf", "ptrace"])
def test_maxframes_caps_every_stack(tmp_path: Path, engine: str) -> None:
    """-x maxframes=N cuts ustack(), ustack(95) and ustack keys to N frames."""
    exe = cc(tmp_path, "chain", CHAIN)
    r = pydtrace("-q", "-x", f"engine={engine}", "-x", "maxframes=2", "-c", exe, "-n",
                 f"{GETPPID} {{ ustack(); ustack(95); @[ustack(50)] = count(); }}"
                 ' END { printa("%k%@d\\n", @); }')  # fmt: skip
    assert r.status == 0, r.err
    one = names(r.out.split("\n\n")[0])
    assert one == [f.format("chain") for f in FRAMES[:2]], r.out
    assert names(r.out) == [f.format("chain") for f in FRAMES[:2]] * 7  # 3 firings x 2, the key
    assert r.out.endswith("3\n\n")


def test_ustack_is_the_same_on_both_engines(tmp_path: Path) -> None:
    """The ptrace engine walks the stopped thread's frame pointers as the
    kernel's callchain does: the same frames, offsets and counts; %A and
    ufunc() of ucaller name the caller in $target."""
    exe = cc(tmp_path, "chain", CHAIN, "-pie")
    prog = (f'{GETPPID} {{ @[ustack()] = count(); ustack(2); printf("%A\\n", ucaller); }}'
            " END { printa(@); }")  # fmt: skip
    outs = []
    for engine in ("ebpf", "ptrace"):
        r = pydtrace("-q", "-x", f"engine={engine}", "-c", exe, "-n", prog)
        assert r.status == 0, (engine, r.err)
        outs.append(r.out)
    assert outs[0] == outs[1]
    one = outs[0].split("\n\n")[1]  # the second firing's record
    assert names(one) == [f.format("chain") for f in FRAMES[:2]] + ["chain`outer"]
    assert one.splitlines()[-1] == one.splitlines()[-2].strip()  # %A: ustack's second frame
    assert names(outs[0].split("\n\n\n")[-1])[:4] == [f.format("chain") for f in FRAMES]
    assert outs[0].endswith("\n                3\n\n")


def test_uregs_index_must_be_a_constant_in_range(tmp_path: Path) -> None:
    for src, err in (("BEGIN { trace(uregs[26]); }", "uregs[]: index out of bounds (26)"),
                     ("BEGIN { trace(uregs[arg0]); }", "uregs[ ] index must be an integer constant")):  # fmt: skip
        r = pydtrace("-x", "errtags", "-n", src)
        assert (r.status, r.err) == (
            1, f"pydtrace: invalid probe specifier {src}: [D_UREGS_IDX] {err}\n")  # fmt: skip


def test_ustack_with_a_frame_limit_and_stackindent(tmp_path: Path) -> None:
    exe = cc(tmp_path, "chain", CHAIN)
    r = pydtrace(
        "-q", "-x", "stackindent=4", "-c", exe, "-n", f"{GETPPID} {{ ustack(2); exit(0); }}"
    )
    assert r.status == 0, r.err
    frames = [x for x in r.out.splitlines() if "`" in x]
    assert [re.sub(r"\+0x[0-9a-f]+$", "", x) for x in frames] == [
        "    libc.so.6`getppid", "    chain`outer"]  # fmt: skip


def test_frames_in_a_shared_library_of_our_own(tmp_path: Path) -> None:
    lib = tmp_path / "libhop.so"
    (tmp_path / "hop.c").write_text(
        "#include <unistd.h>\n__attribute__((noinline)) void hop(void) { getppid(); getppid(); }\n"
    )
    subprocess.run(["cc", "-O0", "-fno-omit-frame-pointer", "-shared", "-fPIC", "-o", str(lib),
                    str(tmp_path / "hop.c")], check=True)  # fmt: skip
    exe = tmp_path / "user"
    (tmp_path / "user.c").write_text(
        "#include <unistd.h>\nvoid hop(void);\n__attribute__((noinline)) void via(void) { hop(); }\n"
        "int main(void) { via(); usleep(200000); return 0; }\n"
    )
    subprocess.run(["cc", "-O0", "-fno-omit-frame-pointer", "-o", str(exe), str(tmp_path / "user.c"),
                    f"-L{tmp_path}", "-lhop", f"-Wl,-rpath,{tmp_path}"], check=True)  # fmt: skip
    r = pydtrace("-q", "-c", str(exe), "-n", f"{GETPPID} {{ ustack(3); }}")
    assert r.status == 0, r.err
    assert names(r.out) == ["libc.so.6`getppid", "user`via", "user`main"] * 2


def test_processes_gone_before_printing_resolve(tmp_path: Path) -> None:
    """Not targets, gone within a millisecond, printed at the end: their
    mappings come from the kernel's mmap records (engines/ebpf/mmaps.py), as
    does a library loaded with dlopen after the process started."""
    lib = tmp_path / "libhop.so"
    (tmp_path / "hop.c").write_text(
        "#include <unistd.h>\n__attribute__((noinline)) static void hop2(void) { getppid(); }\n"
        "__attribute__((noinline)) void hop(void) { hop2(); }\n"
    )
    subprocess.run(["cc", "-O0", "-fno-omit-frame-pointer", "-shared", "-fPIC", "-o", str(lib),
                    str(tmp_path / "hop.c")], check=True)  # fmt: skip
    # (a walk from inside getppid skips its caller's frame: see FRAMES)
    exe = cc(tmp_path, "brief", f"""
        #include <dlfcn.h>
        #include <unistd.h>
        __attribute__((noinline)) static void direct2(void) {{ getppid(); }}
        __attribute__((noinline)) void direct(void) {{ direct2(); }}
        int main(void) {{
            direct();
            void *h = dlopen("{lib}", RTLD_NOW);
            if (!h) return 1;
            ((void (*)(void))dlsym(h, "hop"))();
            return 0;
        }}""", "-ldl")  # fmt: skip
    script = tmp_path / "run.sh"
    script.write_text(f"#!/bin/sh\nsleep 0.3\n{exe}\n{exe}\nsleep 0.3\n")
    script.chmod(0o755)
    r = pydtrace("-q", "-c", str(script), "-n",
                 'syscall::getppid:entry /execname == "brief"/ { @[ustack(2)] = count(); }'
                 ' END { printa("%k%@d\\n", @); }')  # fmt: skip
    assert r.status == 0, r.err
    rows = sorted(x.strip("\n") for x in re.sub(r"\+0x[0-9a-f]+", "", r.out).split("\n\n"))
    frame = " " * 14 + "{}\n"
    direct = frame.format("libc.so.6`getppid") + frame.format("brief`direct") + "1"
    hop = frame.format("libc.so.6`getppid") + frame.format("libhop.so`hop") + "1"
    assert rows == ["", direct, direct, hop, hop], r.out  # two processes, one row each


BUSY = """
        __attribute__((noinline)) long spin(long n) {
            long s = 0;
            for (long i = 0; i < n; i++) s += i ^ (s >> 3);
            return s;
        }
        int main(void) { long t = 0; for (int k = 0; k < 30; k++) t += spin(10000000); return (int)(t & 1); }
"""


def test_symbol_actions(tmp_path: Path) -> None:
    exe = cc(tmp_path, "busy", BUSY)
    r = pydtrace("-q", "-c", exe, "-n",
                 "profile-997 /pid == $target && arg1 && arg1 < 0x700000000000 && !x/ { x = 1;"  # in busy
                 " uaddr(arg1); usym(arg1);"
                 ' ufunc(arg1); umod(arg1); printf("\\n"); exit(0); }')  # fmt: skip
    assert r.status == 0, r.err
    fields = [r.out[i : i + 52] for i in range(0, 52 * 4, 52)]
    assert re.fullmatch(r"  busy`spin\+0x[0-9a-f]+ +", fields[0])
    assert fields[1:] == ["  %-50s" % "busy`spin", "  %-50s" % "busy`spin", "  %-50s" % "busy"]


@pytest.mark.parametrize(
    ("src", "err"),
    [
        ("BEGIN { stack(-1); }", "[D_STACK_SIZE] line 1: stack( ) argument #1 must be a non-zero positive integer constant"),
        ("BEGIN { ustack(0, 200); }", "[D_USTACK_FRAMES] line 1: ustack( ) argument #1 must be a non-zero positive integer constant"),
        ("BEGIN { ustack(5, -1); }", "[D_USTACK_STRSIZE] line 1: ustack( ) argument #2 must be a positive integer constant"),
    ],
)  # fmt: skip
def test_frame_counts_are_positive_constants(tmp_path: Path, src: str, err: str) -> None:
    script = tmp_path / "s.d"
    script.write_text(src + "\n")
    r = pydtrace("-x", "errtags", "-s", str(script))
    assert r.status == 1
    assert r.err == f"pydtrace: failed to compile script {script}: {err}\n"


def test_folded_output_for_flame_graphs(tmp_path: Path) -> None:
    """-x folded: stackcollapse's lines (outermost frame first, no offsets,
    rows that fold alike added up), nothing else on stdout."""
    exe = cc(tmp_path, "chain", CHAIN)
    r = pydtrace(
        "-q", "-x", "folded", "-c", exe, "-n", f"{GETPPID} {{ @[execname, ustack()] = count(); }}"
    )
    assert r.status == 0, r.err
    assert (
        r.out
        == "chain;libc.so.6`__libc_start_call_main;chain`main;chain`outer;libc.so.6`getppid 3\n"
    )


def test_symbols_as_aggregation_keys_name_one_row_each(tmp_path: Path) -> None:
    """Samples anywhere in spin() are one ufunc() key and one umod() key, as
    dtrace's consumer folds the addresses; uaddr() keeps them apart."""
    exe = cc(tmp_path, "busy", BUSY)
    r = pydtrace("-q", "-c", exe, "-n", "profile-997 /pid == $target && arg1 && arg1 < 0x700000000000/ "
                 "{ @f[ufunc(arg1)] = count(); @m[umod(arg1)] = count(); @a[uaddr(arg1)] = count(); }")  # fmt: skip
    assert r.status == 0, r.err
    rows = [x for x in r.out.splitlines() if x]
    f = [x for x in rows if re.fullmatch(r"  busy`spin +\d+", x)]
    m = [x for x in rows if re.fullmatch(r"  busy +\d+", x)]
    a = [x for x in rows if re.fullmatch(r"  busy`spin\+0x[0-9a-f]+ +\d+", x)]
    assert len(f) == len(m) == 1 and len(a) > 1
    total = int(f[0].split()[-1])
    assert int(m[0].split()[-1]) == total == sum(int(x.split()[-1]) for x in a)
