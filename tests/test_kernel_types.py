"""Kernel types and symbols for D (symbols/kernel_types.py, the checker's use
of it, and both engines): first against a hand-built BTF blob and kallsyms
with exact answers, then against the running kernel, whose values the tests
know from elsewhere (a -c target's pid and name, /proc, kallsyms)."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import ROOT, bpf_maps_ok, need, ptrace_works, pydtrace, same_on_both_engines
from pydtrace.lang import types as T
from pydtrace.lang.checker import Checker
from pydtrace.lang.errors import DError
from pydtrace.lang.parser import parse
from pydtrace.symbols import btf as B
from pydtrace.symbols.kernel_types import KernelTypes
from test_btf import Blob


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(BTF file, kallsyms file) of a small made-up kernel."""
    b = Blob()
    t_int = b.add("int", B.INT, 0, 4, struct.pack("<I", 1 << 24 | 32))  # 1
    t_uint = b.add("unsigned int", B.INT, 0, 4, struct.pack("<I", 32))  # 2
    t_char = b.add("char", B.INT, 0, 1, struct.pack("<I", 1 << 24 | 8))  # 3
    t_comm = b.add("", B.ARRAY, 0, 0, struct.pack("<III", t_char, t_int, 16))  # 4
    t_ptask = b.add("", B.PTR, 0, 7)  # 5: struct task *
    t_ulong = b.add("long unsigned int", B.INT, 0, 8, struct.pack("<I", 64))  # 6
    # 7: struct task { int pid; char comm[16]; struct task *parent;
    #     union { unsigned long u1; int u2; }; unsigned int lo:3, hi:5;
    #     int (*fn)(int); unsigned long flex[]; }
    m = struct.pack("<III", b.s("pid"), t_int, 0)
    m += struct.pack("<III", b.s("comm"), t_comm, 32)
    m += struct.pack("<III", b.s("parent"), t_ptask, 192)
    m += struct.pack("<III", 0, 8, 256)
    m += struct.pack("<III", b.s("lo"), t_uint, 3 << 24 | 320)
    m += struct.pack("<III", b.s("hi"), t_uint, 5 << 24 | 323)
    m += struct.pack("<III", b.s("fn"), 13, 384)
    m += struct.pack("<III", b.s("flex"), 14, 448)
    assert b.add("task", B.STRUCT, 8, 56, m, kflag=1) == 7
    u = struct.pack("<III", b.s("u1"), t_ulong, 0) + struct.pack("<III", b.s("u2"), t_int, 0)
    assert b.add("", B.UNION, 2, 8, u) == 8
    b.add("task_t", B.TYPEDEF, 0, 7)  # 9
    b.add("color", B.ENUM, 2, 4, struct.pack("<IiIi", b.s("RED"), 0, b.s("BLUE"), 7))  # 10
    b.add("big", B.ENUM64, 1, 8, struct.pack("<III", b.s("HUGE"), 0, 1))  # 11
    b.add("", B.FUNC_PROTO, 1, t_int, struct.pack("<II", 0, t_int))  # 12
    b.add("", B.PTR, 0, 12)  # 13
    b.add("", B.ARRAY, 0, 0, struct.pack("<III", t_ulong, t_int, 0))  # 14
    b.add("opaque", B.FWD, 0, 0)  # 15
    b.add("do_thing", B.FUNC, 1, 12)  # 16 (global linkage)
    b.add("pcpu_counter", B.VAR, 0, t_int, struct.pack("<I", 1))  # 17
    b.add(".data..percpu", B.DATASEC, 1, 0x100, struct.pack("<III", 17, 0x40, 4))  # 18
    b.add("gfp_t", B.TYPEDEF, 0, t_uint)  # 19
    b.add("empty", B.STRUCT, 1, 0, struct.pack("<III", b.s("flex"), 14, 0))  # 20: only flex[]
    d = tmp_path_factory.mktemp("kernel")
    (d / "btf").write_bytes(b.data())
    (d / "kallsyms").write_text(
        "ffffffff81000000 T do_thing\n"
        "ffffffff81000100 t other_func\n"
        "ffffffff82000000 D __start_rodata\n"
        "ffffffffa0000000 t mod_func\t[somemod]\n"
    )
    return str(d / "btf"), str(d / "kallsyms")


def kernel_of(fake: tuple[str, str]) -> KernelTypes:
    return KernelTypes(btf_path=fake[0], kallsyms_path=fake[1])


# --- the conversion ----------------------------------------------------------------------


def test_struct_members_convert_on_first_use(fake):
    k = kernel_of(fake)
    task = k.type_named("struct task")
    assert (task.kind, task.name, task.size, task.tag, task.kernel) == (
        "struct",
        "struct task",
        56,
        "task",
        True,
    )
    assert len(k._types) == 1  # nothing of its members yet
    got = [(m.name, m.type.name, m.offset, m.bit_offset, m.bits) for m in task.members]
    assert got == [
        ("pid", "int", 0, 0, 0),
        ("comm", "char [16]", 4, 0, 0),
        ("parent", "struct task *", 24, 0, 0),
        ("", "union (anon)", 32, 0, 0),
        ("lo", "unsigned int", 40, 0, 3),
        ("hi", "unsigned int", 40, 3, 5),
        ("fn", "int (*)()", 48, 0, 0),
        ("flex", "unsigned long [0]", 56, 0, 0),
    ]
    assert task.member("parent").type.r.target is task  # one CType per BTF type
    u2 = task.member("u2")  # a member of the anonymous union, at its offset
    assert (u2.type, u2.offset) == (T.INT, 32)
    assert task.member("fn").type.is_pointer()


def test_typedefs_enums_and_forward_declarations(fake):
    k = kernel_of(fake)
    assert k.is_typedef("gfp_t") and k.is_typedef("task_t")
    assert k._btf is None  # answered from the raw bytes, without reading every type
    assert not k.is_typedef("task") and not k.is_typedef("nosuch")
    td = k.type_named("task_t")
    assert (td.name, td.r.name, td.size) == ("task_t", "struct task", 56)
    assert [m.name for m in td.r.members][:2] == ["pid", "comm"]
    assert k.type_named("gfp_t").r is T.UINT
    color = k.type_named("enum color")
    assert (color.kind, color.enumerators, color.size) == ("enum", {"RED": 0, "BLUE": 7}, 4)
    big = k.type_named("enum big")  # D's enums are ints: a wider one is its integer
    assert (big.kind, big.name, big.size, big.signed) == ("int", "enum big", 8, False)
    opaque = k.type_named("struct opaque")
    assert opaque.members is None  # only declared: incomplete, as in C
    assert k.type_named("union task") is None
    assert k.type_named("struct nosuch") is None


def test_no_btf_means_no_kernel_types(tmp_path):
    k = KernelTypes(btf_path=str(tmp_path / "none"), kallsyms_path=str(tmp_path / "none"))
    assert k.type_named("struct task_struct") is None
    assert not k.is_typedef("u64")


# --- `symbols ------------------------------------------------------------------------------


def test_symbols_from_kallsyms_and_btf(fake):
    k = kernel_of(fake)
    f = k.symbol("", "do_thing")
    assert (f.module, f.name, f.address, f.type.kind, f.type.name, f.percpu) == (
        "vmlinux",
        "do_thing",
        0xFFFFFFFF81000000,
        "func",
        "int ()",
        False,
    )
    v = k.symbol("vmlinux", "pcpu_counter")  # BTF's per-CPU variable: its offset
    assert (v.address, v.type, v.percpu) == (0x40, T.INT, True)


@pytest.mark.parametrize(
    "module, name, tag, message, hint",
    [
        (
            "",
            "nothere",
            "D_IDENT_UNDEF",
            "failed to resolve `nothere: Unknown symbol name",
            "`nothere: this kernel's kallsyms lists functions and 1 data symbols only"
            " (no CONFIG_KALLSYMS_ALL), and its BTF describes per-CPU variables only",
        ),
        ("", "", "D_IDENT_UNDEF", "failed to resolve `: Unknown symbol name", None),
        (
            "",
            "other_func",
            "D_SYM_NOTYPES",
            "no symbolic type information is available for vmlinux`other_func: "
            "No type information available for symbol",
            None,
        ),
        (
            "",
            "__start_rodata",
            "D_SYM_NOTYPES",
            "no symbolic type information is available for vmlinux`__start_rodata: "
            "No type information available for symbol",
            None,
        ),
        ("gfs2", "x", "D_IDENT_UNDEF", "failed to resolve gfs2`x: Unknown module name", None),
        (
            "somemod",
            "mod_func",
            "D_SYM_NOTYPES",
            "no symbolic type information is available for somemod`mod_func: "
            "No type information available for symbol",
            None,
        ),
    ],
)
def test_symbol_errors(fake, module, name, tag, message, hint):
    with pytest.raises(DError) as e:
        kernel_of(fake).symbol(module, name)
    assert (e.value.tag, e.value.message, e.value.hint) == (tag, message, hint)


# --- the checker ---------------------------------------------------------------------------


def check(src: str, kernel: KernelTypes | None):
    from test_checker import FakeProbe

    tree = parse(src, filename="t.d", kernel_typedef=kernel.is_typedef if kernel else None)
    return Checker(lambda spec, line: [FakeProbe()], kernel=kernel).check(tree)


def types_of(prog) -> list[str]:
    """The type of each statement's expression value (x = e: e's type)."""
    out = []
    for s in prog.clauses[0].body:
        e = s.expr
        out.append((e.value if hasattr(e, "value") else e).ctype.name)
    return out


def test_checker_reads_kernel_types(fake):
    prog = check(
        """struct task *p;
        BEGIN {
            a = p->comm;
            b = p->u2;
            c = p->hi;
            d = p->parent->parent->pid;
            e = (gfp_t)1;
            f = sizeof (task_t);
        }""",
        kernel_of(fake),
    )
    assert types_of(prog) == ["char [16]", "int", "unsigned int", "int", "gfp_t", "size_t"]
    assert prog.kernel_reads == [
        ("p->comm", 3),
        ("p->u2", 4),
        ("p->hi", 5),
        ("p->parent", 6),
        ("p->parent->parent", 6),
        ("p->parent->parent->pid", 6),
    ]


def test_d_declarations_win_over_the_kernels(fake):
    prog = check(
        """struct task { char only; };
        typedef char gfp_t;
        BEGIN { a = sizeof (struct task); b = sizeof (gfp_t); c = ((struct task *)0)->only; }""",
        kernel_of(fake),
    )
    sizes = [s.expr.value.value for s in prog.clauses[0].body[:2]]
    assert sizes == [1, 1]
    assert prog.kernel_reads == []  # D's own struct: no kernel memory


def test_kernel_names_the_checker_cannot_find(fake):
    with pytest.raises(DError) as e:
        check("BEGIN { x = ((struct task *)0)->nope; }", kernel_of(fake))
    assert (e.value.tag, e.value.message) == (
        "D_TYPE_MEMBER",
        "nope is not a member of struct task",
    )
    with pytest.raises(DError) as e:
        check("BEGIN { x = ((struct opaque *)0)->a; }", kernel_of(fake))
    assert (e.value.tag, e.value.message) == (
        "D_OP_INCOMPLETE",
        "operator -> cannot be applied to a forward declaration:"
        " no struct opaque definition is available",
    )
    # without kernel types, curthread stays the opaque pointer it was
    prog = check("BEGIN { x = curthread; }", kernel_of(fake))
    assert types_of(prog) == ["void *"]
    with pytest.raises(DError) as e:
        check("BEGIN { x = `do_thing; }", None)
    assert (e.value.tag, e.value.message) == (
        "D_SYM_NOKERNEL",
        "failed to resolve `do_thing: kernel symbols are not available on this engine",
    )


def test_kernel_typedef_names_only_where_a_type_may_stand(fake):
    asked: list[str] = []
    k = kernel_of(fake)

    def spy(name: str) -> bool:
        asked.append(name)
        return k.is_typedef(name)

    src = "BEGIN { a = b + 2; c = d * 3; e = (gfp_t)f; g = (h); }"
    tree = parse(src, kernel_typedef=spy)
    # `b +` and `f;` are never types; `d *`, `(gfp_t)` and `(h)` may be
    assert asked == ["d", "gfp_t", "h"]
    cast = tree.items[0].body[2].expr.value
    assert (type(cast).__name__, cast.type.spec.words) == ("Cast", ["gfp_t"])


@pytest.mark.parametrize(
    "src, tag, message",
    [
        (
            "BEGIN { x = offsetof(struct opaque, a); }",
            "D_OFFSETOF_TYPE",
            "offsetof operand must be a struct or union type",
        ),
        (
            "translator struct opaque < int x > { a = x; };",
            "D_XLATE_SOU",
            "incomplete struct/union/enum struct opaque",
        ),
        (
            "BEGIN { print((struct empty *)0); }",
            "D_PRINT_SIZE",
            "print( ) argument #1 reference has type 'struct empty' with size 0;"
            " cannot print( ) it.",
        ),
        (
            "struct task *p; BEGIN { tracemem(*p, 8); }",
            "D_TRACEMEM_ADDR",
            "tracemem( ) argument #1 is incompatible with prototype:\n"
            "\tprototype: pointer or integer\n\t argument: struct task",
        ),
        (
            "struct task *p; BEGIN { x = p; x = pid; }",
            "D_OP_INCOMPAT",
            'operands have incompatible types: "struct task *" = "pid_t"',
        ),
        (
            "BEGIN { x = fds[execname].fi_name; }",
            "D_PROTO_ARG",
            "fds[ ] key #1 is incompatible with prototype:\n\tprototype: int\n\t      key: string",
        ),
        (
            "BEGIN { x = fds[1, 2].fi_name; }",
            "D_PROTO_LEN",
            "fds[ ] prototype mismatch: 2 keys passed, 1 expected",
        ),
    ],
)
def test_checker_rules_for_kernel_and_incomplete_types(fake, src, tag, message):
    with pytest.raises(DError) as e:
        check(src, kernel_of(fake))
    assert (e.value.tag, e.value.message) == (tag, message)


def test_a_pointer_takes_null_but_no_other_integer(fake):
    prog = check("struct task *p; BEGIN { x = p; x = 0; y = fds[0].fi_offset; }", kernel_of(fake))
    assert types_of(prog) == ["struct task *", "int", "loff_t"]


# --- start-up: nothing of BTF unless a program names a kernel type -----------------------


def test_begin_exit_never_reads_btf():
    code = textwrap.dedent(
        """
        from pydtrace.session import Session, Program
        from pydtrace.symbols import btf
        import sys
        s = Session([Program("n", "BEGIN { x = 1; exit(0); }")])
        s.compile()
        print("pydtrace.symbols.kernel_types" in sys.modules, btf.loaded() is None)
        s = Session([Program("n", "BEGIN { trace(curthread->pid); exit(0); }")])
        s.compile()
        print(btf.loaded() is not None, len(s._kernel.real._types) < 400)
        """
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    p = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    need(os.path.exists(B.VMLINUX), "no kernel BTF")
    assert p.stdout == "False True\nTrue True\n", p.stderr


# --- the running kernel ------------------------------------------------------------------


def ebpf() -> None:
    need(bpf_maps_ok(), "needs root and bpf(2)")
    need(os.path.exists(B.VMLINUX), "no kernel BTF")


def test_curthread_against_a_known_target(tmp_path):
    """curthread's members against what the test knows: the -c target's pid
    (printed by itself), name, parent (pydtrace) and the program's argv."""
    ebpf()
    script = tmp_path / "target.sh"
    script.write_text('echo "pid=$$"\n')
    script.chmod(0o755)
    prog = (
        "syscall::write:entry /pid == $target/ {"
        ' printf("curthread: %d %d %s %d %d\\n", curthread->pid, curthread->tgid,'
        " stringof(curthread->comm), curthread->real_parent->tgid == ppid,"
        " ((struct task_struct *)curthread)->pid == pid);"
        ' printf("comm: %s\\n", curthread->comm);'
        ' printf("argv0: %s\\n", copyinstr(curthread->mm->arg_start));'
        "}"
    )
    r = pydtrace("-q", "-x", "engine=ebpf", "-c", f"/bin/sh {script}", "-n", prog)
    assert r.status == 0, r.err
    m = re.search(r"^pid=(\d+)$", r.out, re.M)
    assert m, r.out
    tpid = m.group(1)
    lines = [x for x in r.out.splitlines() if not x.startswith("pid=")]
    assert lines == [f"curthread: {tpid} {tpid} sh 1 1", "comm: sh", "argv0: /bin/sh", ""]


def test_kernel_reads_fault_as_dtrace_reports():
    ebpf()
    r = pydtrace(
        "-q",
        "-n",
        "BEGIN { trace(((struct task_struct *)NULL)->pid); }"
        " BEGIN { trace(((struct task_struct *)16)->pid); }"
        " BEGIN { exit(0); }",
    )
    assert r.status == 0
    faults = [re.sub(r" at BPF pc \d+", "", x) for x in r.err.splitlines()]
    off = B.vmlinux().member_offset("task_struct", "pid")
    assert faults == [
        "pydtrace: error in dt_clause_0 for probe ID 1 (dtrace:::BEGIN): invalid address (0x0)",
        "pydtrace: error in dt_clause_1 for probe ID 1 (dtrace:::BEGIN):"
        f" invalid address ({16 + off:#x})",
    ]


def test_user_engine_refuses_kernel_reads():
    need(ptrace_works(), "ptrace is not available")
    for prog, what in (
        ("BEGIN { trace(curthread->comm); exit(0); }", "curthread->comm"),
        ("BEGIN { trace(*curthread); exit(0); }", "*curthread"),
        ("BEGIN { trace(`cpu_number); exit(0); }", "`cpu_number"),
    ):
        if not os.path.exists(B.VMLINUX):
            pytest.skip("no kernel BTF")
        r = pydtrace("-x", "engine=ptrace", "-n", prog)
        assert (r.status, r.out) == (1, "")
        assert r.err == (
            "pydtrace: description 'BEGIN ' matched 1 probe\n"
            "pydtrace: could not enable tracing: the user-space engine cannot read kernel"
            f" memory ({what}, line 1); the eBPF engine reads it\n"
        )


def test_symbols_of_the_running_kernel():
    ebpf()
    with open("/proc/kallsyms") as f:
        text = f.read()
    addr = int(re.search(r"^([0-9a-f]+) T vfs_read$", text, re.M).group(1), 16)
    r = pydtrace(
        "-q",
        "-n",
        'BEGIN { printf("%a %p\\n", &`vfs_read, &vmlinux`vfs_read);'
        ' printf("%d %d\\n", `cpu_number == cpu, `runqueues.cpu == cpu); exit(0); }',
    )
    assert (r.status, r.err) == (0, "")
    assert r.out == f"vmlinux`vfs_read {addr:x}\n1 1\n\n"


def test_a_missing_symbol_says_why():
    need(os.path.exists(B.VMLINUX), "no kernel BTF")
    with open("/proc/kallsyms") as f:
        text = f.read()
    ndata = len(re.findall(r"^\S+ [dDbB] ", text, re.M))
    need(ndata < 1000, "this kernel's kallsyms lists its variables (CONFIG_KALLSYMS_ALL)")
    r = pydtrace("-n", "BEGIN { trace(`max_pfn); }")
    assert (r.status, r.out) == (1, "")
    assert r.err == (
        "pydtrace: invalid probe specifier BEGIN { trace(`max_pfn); }:"
        " failed to resolve `max_pfn: Unknown symbol name\n"
        f"pydtrace: hint: `max_pfn: this kernel's kallsyms lists functions and {ndata} data"
        " symbols only (no CONFIG_KALLSYMS_ALL), and its BTF describes per-CPU variables only\n"
    )


def test_translators_from_the_kernel_task():
    ebpf()
    r = pydtrace(
        "-q",
        "-n",
        'BEGIN { printf("%d %d %d %s\\n", xlate<psinfo_t>(curthread).pr_pid == pid,'
        " xlate<psinfo_t *>(curthread)->pr_ppid == ppid,"
        " xlate<psinfo_t>((struct task_struct *)0).pr_addr,"
        ' xlate<lwpsinfo_t>(curthread).pr_sname == \'R\' ? "R" : "?"); exit(0); }',
    )
    assert (r.status, r.err, r.out) == (0, "", "1 1 0 R\n\n")


# --- fds[] and d_path() ---------------------------------------------------------------------

TARGET = """\
import os, sys
d = sys.argv[1]
os.chdir(d)
f = os.open("data.txt", os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
os.write(f, b"hello")
os.lseek(f, 2, 0)
os.read(f, 1)
os.unlink("data.txt")
os.read(f, 1)
r, w = os.pipe()
os.set_inheritable(w, True)
os.write(w, b"x")
try:
    os.read(1234, 1)
except OSError:
    pass
with open("fds.txt", "w") as out:
    out.write(f"{f} {w} {os.fstat(w).st_ino}")
"""


def mount_of(path: str) -> tuple[str, str]:
    """(file system type, mount point) holding path, from mountinfo."""
    best = ("", "")
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            point = parts[4]
            fstype = parts[parts.index("-") + 1]
            if (path + "/").startswith(point.rstrip("/") + "/") and len(point) >= len(best[1]):
                best = (fstype, point)
    return best


@pytest.mark.parametrize("engine", ["ebpf", "ptrace"])
def test_fds_against_the_files_the_target_opened(tmp_path, engine):
    if engine == "ebpf":
        ebpf()
    else:
        need(ptrace_works(), "ptrace is not available")
    target = tmp_path / "target.py"
    target.write_text(TARGET)
    prog = (
        "syscall::read:entry, syscall::write:entry /pid == $target && arg0 > 2/ {"
        ' printf("%s %d [%s] [%s] [%s] %d [%s] [%s] %o\\n", probefunc, arg0,'
        " fds[arg0].fi_pathname, fds[arg0].fi_name, fds[arg0].fi_dirname,"
        " fds[arg0].fi_offset, fds[arg0].fi_fs, fds[arg0].fi_mount, fds[arg0].fi_oflags); }"
    )
    cmd = f"{sys.executable} -S {target} {tmp_path}"
    r = pydtrace("-q", "-x", f"engine={engine}", "-c", cmd, "-n", prog, timeout=60)
    assert r.status == 0, r.err
    f, w, ino = (tmp_path / "fds.txt").read_text().split()
    d = str(tmp_path)
    fstype, point = mount_of(d)
    flags = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC | 0o100000  # opened with O_LARGEFILE
    ours = [x for x in r.out.splitlines() if f"{d}/data.txt" in x]
    ours += [x for x in r.out.splitlines() if "pipe:" in x or "<none>" in x]
    assert ours == [
        f"write {f} [{d}/data.txt] [data.txt] [{d}] 0 [{fstype}] [{point}] {flags:o}",
        f"read {f} [{d}/data.txt] [data.txt] [{d}] 2 [{fstype}] [{point}] {flags:o}",
        f"read {f} [{d}/data.txt (deleted)] [data.txt] [{d}] 3 [{fstype}] [{point}] {flags:o}",
        f"write {w} [pipe:[{ino}]] [pipe:[{ino}]] [.] 0 [pipefs] [<unknown>] 1",
        "read 1234 [<none>] [<none>] [<none>] 0 [<none>] [<none>] 0",
    ]


def test_d_path_of_the_working_directory(tmp_path):
    ebpf()
    r = pydtrace(
        "-q",
        "-n",
        'BEGIN { printf("%s|%s\\n", d_path(&curthread->fs->pwd), d_path(&curthread->fs->root));'
        " exit(0); }",
        cwd=str(tmp_path),
    )
    assert (r.status, r.err, r.out) == (0, "", f"{Path(tmp_path).resolve()}|/\n\n")


SOCKET_TARGET = """\
import os, socket
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
try:
    os.read(s.fileno(), 1)
except OSError:
    pass
"""


def test_kernel_bit_fields_and_pointer_chains(tmp_path):
    """A socket's struct sock, reached from the descriptor through the file
    table, a void * and a cast, against the options the target set: the
    4-bit skc_reuse (SO_REUSEADDR: 1) and the 1-bit skc_ipv6only
    (IPV6_V6ONLY: 1) bit-fields, sk_type (SOCK_STREAM 1), sk_protocol (TCP 6)."""
    ebpf()
    target = tmp_path / "target.py"
    target.write_text(SOCKET_TARGET)
    prog = (
        'syscall::read:entry /pid == $target && fds[arg0].fi_fs == "sockfs"/ {'
        " this->sk = ((struct socket *)curthread->files->fdt->fd[arg0]->private_data)->sk;"
        ' printf("%d %d %d %d\\n", this->sk->__sk_common.skc_reuse,'
        " this->sk->__sk_common.skc_ipv6only, this->sk->sk_type, this->sk->sk_protocol); }"
    )
    cmd = f"{sys.executable} -S {target}"
    r = pydtrace("-q", "-x", "engine=ebpf", "-c", cmd, "-n", prog, timeout=60)
    assert (r.status, r.err, r.out) == (0, "", "1 1 1 6\n\n")


def test_fds_as_a_whole_struct_on_both_engines():
    """trace(fds[0]): every member, the bytes of the fileinfo_t (stdin is
    /dev/null here), the same on both engines."""
    ebpf()
    need(ptrace_works(), "ptrace is not available")
    r = same_on_both_engines("-q", "-n", "BEGIN { trace(fds[0]); exit(0); }")
    assert r.out.splitlines()[2] == (
        "         0: 6e 75 6c 6c 00 00 00 00 00 00 00 00 00 00 00 00  null............"
    )


def test_d_path_of_null_faults():
    ebpf()
    r = pydtrace("-q", "-n", "BEGIN { trace(d_path((struct path *)0)); } BEGIN { exit(0); }")
    assert r.status == 0
    assert re.sub(r" at BPF pc \d+", "", r.err) == (
        "pydtrace: error in dt_clause_0 for probe ID 1 (dtrace:::BEGIN): invalid address (0x0)\n"
    )


@pytest.mark.parametrize("engine", ["ebpf", "ptrace"])
def test_cwd_and_root(tmp_path, engine):
    if engine == "ebpf":
        ebpf()
    else:
        need(ptrace_works(), "ptrace is not available")
    script = tmp_path / "target.sh"
    script.write_text("cd /usr && echo hi >/dev/null\n")
    prog = 'syscall::write:entry /pid == $target/ { printf("[%s] [%s]\\n", cwd, root); }'
    r = pydtrace(
        "-q", "-x", f"engine={engine}", "-c", f"/bin/sh {script}", "-n", prog, cwd=str(tmp_path)
    )
    assert (r.status, r.err, r.out) == (0, "", "[/usr] [/]\n\n")
