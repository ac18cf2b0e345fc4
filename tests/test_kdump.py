"""kdump: exact lines for trace files built with format.Writer (no recorder
needed), its options and errors, and round trips of the writer and reader."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pydtrace.ktrace import decode as D
from pydtrace.ktrace import format as F

SRC = str(Path(__file__).resolve().parents[1] / "src")
T0 = 1_700_000_000
X86 = f"{D.AUDIT_ARCH_X86_64:#x}"
NR = {"read": 0, "write": 1, "open": 2, "close": 3, "mmap": 9, "clone": 56, "execve": 59,
      "exit_group": 231, "openat": 257, "socket": 41, "kill": 62, "getpid": 39}  # fmt: skip
U64 = 0xFFFFFFFFFFFFFFFF


def kdump(*args: str, stdin: bytes | None = None, timeout: float = 20) -> tuple[int, str, str]:
    env = dict(os.environ, PYTHONPATH=SRC)
    p = subprocess.run([sys.executable, "-m", "pydtrace.cli.kdump", *args], input=stdin,
                       capture_output=True, env=env, timeout=timeout)  # fmt: skip
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def start(sec: int = T0, **info: str) -> F.Record:
    return F.start_record({"engine": "ptrace", "arch": X86, "points": "cnistux", **info}, sec, 0)


def rec(rtype: int, payload: bytes, us: int = 0, pid: int = 4321, tid: int | None = None,
        comm: str = "cat", lost: int = 0) -> F.Record:  # fmt: skip
    """A record `us` microseconds after T0."""
    sec, rest = divmod(us, 1_000_000)
    return F.Record(rtype, pid, pid if tid is None else tid, payload, T0 + sec, rest * 1000,
                    comm, lost=lost)  # fmt: skip


def call(name: str, *args: int, **kw) -> F.Record:
    a = [x & U64 for x in args] + [0] * (6 - len(args))
    return rec(F.SYSCALL, F.syscall_payload(NR[name], a), **kw)


def ret(name: str, value: int = 0, error: int = 0, **kw) -> F.Record:
    return rec(F.SYSRET, F.sysret_payload(NR[name], error, value), **kw)


def write_trace(path: Path, records: list[F.Record], append: bool = False,
                first: F.Record | None = None) -> Path:  # fmt: skip
    with F.Writer(str(path), append=append) as w:
        w.write(first or start())
        for r in records:
            w.write(r)
    return path


# a cat of /etc/motd, as OpenBSD's kdump(1) manual shows it
CAT = [
    rec(F.EXECARGS, F.strings_payload([b"cat", b"/etc/motd"]), 1),
    call("openat", -100, 0x7FFD1000, 0x80000, us=2),
    rec(F.NAMEI, b"/etc/motd", 2),
    ret("openat", 3, us=3),
    call("read", 3, 0x1B7E3CD8C000, 0x10000, us=4),
    rec(F.GENIO, F.genio_payload(3, False, b"hello world\n"), 5),
    ret("read", 12, us=6),
    call("write", 1, 0x1B7E3CD8C000, 12, us=7),
    rec(F.GENIO, F.genio_payload(1, True, b"hello world\n"), 8),
    ret("write", 12, us=9),
    call("close", 3, us=10),
    ret("close", 0, us=11),
    call("open", 0x7FFD2000, 0, us=12),
    rec(F.NAMEI, b"/nonexistent", 12),
    ret("open", error=2, us=13),
    call("exit_group", 0, us=14),
    rec(F.EXIT, F.exit_payload(0), 15),
]
CAT_LINES = [
    "  4321 cat      ARGS  ",
    '\t[0] = "cat"',
    '\t[1] = "/etc/motd"',
    "  4321 cat      CALL  openat(AT_FDCWD,0x7ffd1000,0x80000<O_RDONLY|O_CLOEXEC>)",
    '  4321 cat      NAMI  "/etc/motd"',
    "  4321 cat      RET   openat 3",
    "  4321 cat      CALL  read(3,0x1b7e3cd8c000,0x10000)",
    "  4321 cat      GIO   fd 3 read 12 bytes",
    '       "hello world',
    '       "',
    "  4321 cat      RET   read 12/0xc",
    "  4321 cat      CALL  write(1,0x1b7e3cd8c000,0xc)",
    "  4321 cat      GIO   fd 1 wrote 12 bytes",
    '       "hello world',
    '       "',
    "  4321 cat      RET   write 12/0xc",
    "  4321 cat      CALL  close(3)",
    "  4321 cat      RET   close 0",
    "  4321 cat      CALL  open(0x7ffd2000,0<O_RDONLY>)",
    '  4321 cat      NAMI  "/nonexistent"',
    "  4321 cat      RET   open -1 errno 2 No such file or directory",
    "  4321 cat      CALL  exit_group(0)",
    "  4321 cat      EXIT  status 0",
]


@pytest.fixture
def cat_trace(tmp_path: Path) -> Path:
    return write_trace(tmp_path / "ktrace.out", CAT)


def test_default_file_and_openbsd_lines(cat_trace: Path) -> None:
    env = dict(os.environ, PYTHONPATH=SRC)
    p = subprocess.run([sys.executable, "-m", "pydtrace.cli.kdump"], cwd=cat_trace.parent,
                       capture_output=True, text=True, env=env, timeout=20)  # fmt: skip
    assert (p.returncode, p.stderr) == (0, "")
    assert p.stdout.splitlines() == CAT_LINES


def test_stdin(cat_trace: Path) -> None:
    status, out, err = kdump("-f", "-", stdin=cat_trace.read_bytes())
    assert (status, err) == (0, "")
    assert out.splitlines() == CAT_LINES


def test_thread_ids_and_absolute_times(cat_trace: Path) -> None:
    status, out, _ = kdump("-H", "-T", "-f", str(cat_trace), "-t", "c")
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == "  4321/4321    cat      1700000000.000002 CALL  " + CAT_LINES[3][22:]
    assert lines[-1] == "  4321/4321    cat      1700000000.000014 CALL  exit_group(0)"
    assert len(lines) == 11


def test_relative_times(tmp_path: Path) -> None:
    f = write_trace(tmp_path / "t", [call("close", 3, us=1_500_000), ret("close", us=1_750_003),
                                     call("getpid", us=3_000_000)])  # fmt: skip
    _, out, _ = kdump("-R", "-f", str(f))
    assert out.splitlines() == [
        "  4321 cat      1700000001.500000 CALL  close(3)",  # the first shows the absolute time
        "  4321 cat      0.250003 RET   close 0",
        "  4321 cat      1.249997 CALL  getpid()",
    ]
    for opts in (("-T", "-R"), ("-TR",), ("-RT",)):
        _, out, _ = kdump(*opts, "-f", str(f))
        assert [ln[16:31] for ln in out.splitlines()] == ["0.000000 CALL  ", "0.250003 RET   ",
                                                         "1.500000 CALL  "]  # fmt: skip


def test_pid_and_trace_point_filters(tmp_path: Path) -> None:
    f = write_trace(tmp_path / "t", [
        call("getpid", pid=10, comm="a"), ret("getpid", 10, pid=10, comm="a"),
        call("getpid", pid=20, tid=21, comm="b"), ret("getpid", 20, pid=20, tid=21, comm="b"),
        rec(F.NAMEI, b"/x", pid=20, comm="b"), rec(F.PSIG, F.psig_payload(15, 0, 0, 0), pid=10,
                                                   comm="a"),
    ])  # fmt: skip
    _, out, _ = kdump("-f", str(f), "-p", "10")
    assert out.splitlines() == ["    10 a        CALL  getpid()", "    10 a        RET   getpid 10",
                                "    10 a        PSIG  SIGTERM SIG_DFL"]  # fmt: skip
    _, out, _ = kdump("-f", str(f), "-p", "21", "-H")  # a thread id selects its records too
    assert out.splitlines() == ["    20/21      b        CALL  getpid()",
                                "    20/21      b        RET   getpid 20"]  # fmt: skip
    _, out, _ = kdump("-f", str(f), "-t", "ns")
    assert out.splitlines() == [
        '    20 b        NAMI  "/x"',
        "    10 a        PSIG  SIGTERM SIG_DFL",
    ]
    _, out, _ = kdump("-f", str(f), "-t", "n", "-p", "10")
    assert out == ""


def test_io_data_in_three_forms(tmp_path: Path) -> None:
    data = b'hi\t"q"\\\x01\x7f\xc3\xa9\nend'
    f = write_trace(tmp_path / "t", [rec(F.GENIO, F.genio_payload(5, True, data))])
    _, out, _ = kdump("-f", str(f))
    assert out == ("  4321 cat      GIO   fd 5 wrote 15 bytes\n"
                   '       "hi\t"q"\\\\\\^A\\^?\\M-C\\M-)\n\tend"\n')  # fmt: skip
    _, out, _ = kdump("-x", "-f", str(f))
    assert out.splitlines()[1] == "\t" + " ".join(f"{c:02x}" for c in data)
    _, out, _ = kdump("-X", "-f", str(f))
    assert out.splitlines()[1:] == [
        "   0000:  68 69 09 22 71 22 5c 01 7f c3 a9 0a 65 6e 64     " + 'hi."q"\\.....end'
    ]


def test_hex_dumps_wrap_at_80_columns(tmp_path: Path) -> None:
    data = bytes(range(40))
    f = write_trace(tmp_path / "t", [rec(F.GENIO, F.genio_payload(0, False, data))])
    _, out, _ = kdump("-x", "-f", str(f))
    lines = out.splitlines()[1:]
    assert lines == ["\t" + " ".join(f"{c:02x}" for c in data[:24]),
                     "\t" + " ".join(f"{c:02x}" for c in data[24:])]  # fmt: skip
    _, out, _ = kdump("-X", "-f", str(f))
    lines = out.splitlines()[1:]
    assert lines[0] == "   0000:  " + "".join(f"{c:02x} " for c in data[:16]) + " " + "." * 16
    assert lines[2] == ("   0020:  20 21 22 23 24 25 26 27" + "   " * 8 + "  " + " !\"#$%&'")
    assert len(lines) == 3


def test_text_wraps_long_lines(tmp_path: Path) -> None:
    f = write_trace(tmp_path / "t", [rec(F.GENIO, F.genio_payload(1, True, b"a" * 100))])
    _, out, _ = kdump("-f", str(f))
    assert out.splitlines()[1:] == ['       "' + "a" * 70 + "\\", "\t" + "a" * 30 + '"']


def test_maxdata(tmp_path: Path) -> None:
    f = write_trace(tmp_path / "t", [rec(F.GENIO, F.genio_payload(1, True, b"abcdefgh")),
                                     rec(F.USER, F.user_payload("lbl", b"0123456789"))])  # fmt: skip
    _, out, _ = kdump("-m", "3", "-f", str(f))
    assert out.splitlines() == ["  4321 cat      GIO   fd 1 wrote 8 bytes", '       "abc"',
                                "  4321 cat      USER  lbl: 10 bytes", '       "012"']  # fmt: skip
    _, out, _ = kdump("-m", "0", "-f", str(f))
    assert out.splitlines() == ["  4321 cat      GIO   fd 1 wrote 8 bytes",
                                "  4321 cat      USER  lbl: 10 bytes"]  # fmt: skip
    status, _, err = kdump("-m", "-1", "-f", str(f))
    assert (status, err) == (1, "kdump: -m -1: too small\n")


def test_raw_numbers_and_decimal(cat_trace: Path) -> None:
    _, out, _ = kdump("-n", "-t", "c", "-f", str(cat_trace))
    assert out.splitlines()[:6] == [
        "  4321 cat      CALL  openat(-100,0x7ffd1000,0x80000,<unused>0)",
        "  4321 cat      RET   openat 0x3",
        "  4321 cat      CALL  read(3,0x1b7e3cd8c000,0x10000)",
        "  4321 cat      RET   read 0xc",
        "  4321 cat      CALL  write(1,0x1b7e3cd8c000,0xc)",
        "  4321 cat      RET   write 0xc",
    ]
    assert "  4321 cat      RET   open -1 errno 2" in out.splitlines()
    _, out, _ = kdump("-n", "-d", "-t", "c", "-f", str(cat_trace))
    assert out.splitlines()[2:4] == ["  4321 cat      CALL  read(3,0x1b7e3cd8c000,65536)",
                                     "  4321 cat      RET   read 12"]  # fmt: skip


def test_exec_signals_structures_fork_exit(tmp_path: Path) -> None:
    si_segv = struct.pack("<iiiiQ", 11, 0, 1, 0, 0)
    si_chld = struct.pack("<iiiiiIi", 17, 0, 1, 0, 99, 1000, 3)
    st = struct.pack("<QQQIII4xQqqq", 2049, 1234, 1, 0o100644, 1000, 1000, 0, 42, 4096, 8)
    st += struct.pack("<qqqqqq", 10, 0, 20, 500, 30, 0) + bytes(24)
    stx = struct.pack("<IIQIIIH2xQQQQ", 0x7FF, 4096, 0, 2, 0, 0, 0o40755, 77, 4096, 8, 0)
    stx += struct.pack("<qI4x", 10, 0) + struct.pack("<qI4x", 5, 1) + bytes(32)
    stx += struct.pack("<IIII", 0, 0, 8, 1) + bytes(112)
    sa_in = struct.pack("<H", 2) + struct.pack(">H", 80) + bytes([127, 0, 0, 1]) + bytes(8)
    sa_in6 = struct.pack("<H", 10) + struct.pack(">H", 22) + bytes(4) + socket.inet_pton(
        socket.AF_INET6, "::1") + bytes(4)  # fmt: skip
    f = write_trace(tmp_path / "t", [
        rec(F.EXECARGS, F.strings_payload([b"sh", b"-c", b'echo "hi"\n'])),
        rec(F.EXECENV, b"PATH=/bin\0HOME"),
        call("execve", 0x1000, 0x2000, 0x3000),
        call("mmap", 0, 4096, 3, 0x22, -1, 0),
        call("clone", 0x1200011),
        call("socket", 10, 0x80001, 0),
        call("kill", 1234, 34),
        rec(F.PSIG, F.psig_payload(2, 0, 0, 0)),
        rec(F.PSIG, F.psig_payload(11, 1, 0x4011F0, 0, si_segv)),
        rec(F.PSIG, F.psig_payload(17, 1, 0x401000, (1 << 1) | (1 << 14), si_chld)),
        rec(F.PSIG, F.psig_payload(10, 0, 1, 0)),
        rec(F.STRUCT, F.struct_payload("stat", st)),
        rec(F.STRUCT, F.struct_payload("statx", stx)),
        rec(F.STRUCT, F.struct_payload("sockaddr", sa_in)),
        rec(F.STRUCT, F.struct_payload("sockaddr", sa_in6)),
        rec(F.STRUCT, F.struct_payload("sockaddr", struct.pack("<H", 1) + b"/run/s\0")),
        rec(F.STRUCT, F.struct_payload("timespec", struct.pack("<qq", 1, 500000000))),
        rec(F.STRUCT, F.struct_payload("rlimit", struct.pack("<QQ", U64, 1024))),
        rec(F.STRUCT, F.struct_payload("pollfd", struct.pack("<ihh", 3, 1, 0x11))),
        rec(F.STRUCT, F.struct_payload("iovec", struct.pack("<QQQQ", 0x1000, 5, 0x2000, 0))),
        rec(F.STRUCT, F.struct_payload("sigaction", struct.pack("<QQQQ", 1, 0x14000000, 0, 0))),
        rec(F.STRUCT, F.struct_payload("timespec", b"\0" * 3)),
        rec(F.STRUCT, F.struct_payload("fdset", b"")),
        rec(F.FORK, F.fork_payload(4322, 4322, 0x1200011)),
        rec(F.FORK, F.fork_payload(4321, 4323, 0x3D0F00)),
        rec(F.EXIT, F.exit_payload(9)),
        rec(F.EXIT, F.exit_payload(0x86)),
        rec(F.EXIT, F.exit_payload(3 << 8)),
        rec(F.CSW, F.csw_payload(True, False, "futex")),
    ])  # fmt: skip
    status, out, err = kdump("-f", str(f))
    assert (status, err) == (0, "")
    body = [ln[16:] if ln.startswith("  4321") else ln for ln in out.splitlines()]
    assert body == [
        "ARGS  ",
        '\t[0] = "sh"',
        '\t[1] = "-c"',
        '\t[2] = "echo \\"hi\\"\\n"',
        "ENV   ",
        '\t[0] = "PATH=/bin"',
        '\t[1] = "HOME"',
        "\tunterminated argument",
        "CALL  execve(0x1000,0x2000,0x3000)",
        "CALL  mmap(0,0x1000,0x3<PROT_READ|PROT_WRITE>,0x22<MAP_PRIVATE|MAP_ANONYMOUS>,-1,0)",
        "CALL  clone(0x1200011<CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD>,0,0,0,0)",
        "CALL  socket(AF_INET6,SOCK_STREAM|SOCK_CLOEXEC,0)",
        "CALL  kill(1234,SIGRT_2)",
        "PSIG  SIGINT SIG_DFL",
        "PSIG  SIGSEGV caught handler=0x4011f0 mask=0<> code=SEGV_MAPERR addr=0x0",
        "PSIG  SIGCHLD caught handler=0x401000 mask=0x4002<SIGINT|SIGTERM> code=CLD_EXITED"
        " status=3 pid=99 uid=1000",
        "PSIG  SIGUSR1 SIG_IGN",
        "STRU  struct stat { dev=2049, ino=1234, mode=-rw-r--r-- , nlink=1, uid=1000, gid=1000,"
        " rdev=0, atime=10, mtime=20.000000500, ctime=30, size=42, blocks=8, blksize=4096 }",
        "STRU  struct statx { mask=0x7ff, dev=2049, ino=77, mode=drwxr-xr-x , nlink=2, uid=0,"
        " gid=0, rdev=0, atime=10, mtime=0, ctime=0, btime=5.000000001, size=4096, blocks=8,"
        " blksize=4096 }",
        "STRU  struct sockaddr { AF_INET, 127.0.0.1:80 }",
        "STRU  struct sockaddr { AF_INET6, [::1]:22 }",
        'STRU  struct sockaddr { AF_UNIX, "/run/s" }',
        "STRU  struct timespec { 1.500000000 }",
        "STRU  struct rlimit { cur=infinite, max=1024 }",
        "STRU  struct pollfd { fd=3, events=0x1<POLLIN>, revents=0x11<POLLIN|POLLHUP> }",
        "STRU  struct iovec [2] { base=0x1000, len=5 }, { base=0x2000, len=0 }",
        "STRU  struct sigaction { handler=SIG_IGN, mask=0<>, flags=0x14000000<SA_RESTORER|"
        "SA_RESTART> }",
        "STRU  invalid record",
        "STRU  unknown structure fdset",
        "FORK  child 4322",
        "FORK  thread 4323",
        "EXIT  killed SIGKILL",
        "EXIT  killed SIGABRT (core dumped)",
        "EXIT  status 3",
        'CSW   stop kernel "futex"',
    ]


def test_open_with_create_shows_the_mode_in_octal(tmp_path: Path) -> None:
    f = write_trace(tmp_path / "t", [call("openat", -100, 0x1000, 0o1101, 0o644),
                                     call("open", 0x1000, 0o2, 0o644)])  # fmt: skip
    _, out, _ = kdump("-f", str(f))
    assert out.splitlines() == [
        "  4321 cat      CALL  openat(AT_FDCWD,0x1000,0x241<O_WRONLY|O_CREAT|O_TRUNC>,"
        "0644<S_IRUSR|S_IWUSR|S_IRGRP|S_IROTH>)",
        "  4321 cat      CALL  open(0x1000,0x2<O_RDWR>)",
    ]


def test_unknown_syscall_unknown_type_and_errors(tmp_path: Path) -> None:
    f = write_trace(tmp_path / "t", [
        rec(F.SYSCALL, F.syscall_payload(4000, [1, 2, 3, 4, 5, 6])),
        rec(F.SYSRET, F.sysret_payload(4000, 0, -5)),
        rec(F.SYSRET, F.sysret_payload(NR["read"], 4)),
        rec(F.SYSRET, F.sysret_payload(NR["read"], 512)),
        rec(F.SYSRET, F.sysret_payload(NR["getpid"], 0, 4321)),
        rec(99, b"xyz"),
    ])  # fmt: skip
    _, out, _ = kdump("-f", str(f))
    assert [ln[16:] for ln in out.splitlines()] == [
        "CALL  [4000](0x1,0x2,0x3,0x4,0x5,0x6)",
        "RET   [4000] -5/0xfffffffffffffffb",
        "RET   read -1 errno 4 Interrupted system call",
        "RET   read RESTART",
        "RET   getpid 4321",
        "UNKNOWN(99)  ",
    ]


def test_dropped_events(tmp_path: Path) -> None:
    f = write_trace(tmp_path / "t", [call("close", 3, lost=17), ret("close", 0)])
    _, out, _ = kdump("-f", str(f))
    assert out.splitlines() == [
        "  4321 cat      Events dropped. (17 lost)",
        "  4321 cat      CALL  close(3)",
        "  4321 cat      RET   close 0",
    ]
    _, out, _ = kdump("--json", "-f", str(f))
    assert json.loads(out.splitlines()[1])["lost"] == 17


def test_json(cat_trace: Path) -> None:
    status, out, err = kdump("--json", "-m", "5", "-f", str(cat_trace))
    assert (status, err) == (0, "")
    objs = [json.loads(ln) for ln in out.splitlines()]
    assert len(objs) == 1 + len(CAT)
    assert objs[0]["type"] == "STRT" and objs[0]["info"]["arch"] == X86
    assert objs[2] == {
        "offset": objs[2]["offset"], "type": "CALL", "type_number": 1, "pid": 4321, "tid": 4321,
        "cpu": -1, "comm": "cat", "sec": T0, "nsec": 2000, "syscall": "openat", "code": 257,
        "args": [2**64 - 100, 0x7FFD1000, 0x80000, 0, 0, 0],
        "text": "openat(AT_FDCWD,0x7ffd1000,0x80000<O_RDONLY|O_CLOEXEC>)",
    }  # fmt: skip
    assert objs[3]["path"] == "/etc/motd"
    assert objs[6]["fd"] == 3 and objs[6]["rw"] == "read" and objs[6]["len"] == 12
    assert objs[6]["data"] == b"hello".hex()
    err_ret = objs[15]
    assert (err_ret["errno"], err_ret["strerror"], err_ret["error"]) == (
        "ENOENT", "No such file or directory", 2)  # fmt: skip
    assert objs[17]["type"] == "EXIT" and objs[17]["status"] == 0
    assert objs[1]["strings"] == ["cat", "/etc/motd"]
    _, out, _ = kdump("--json", "-t", "n", "-f", str(cat_trace))
    assert [json.loads(ln)["type"] for ln in out.splitlines()] == ["STRT", "NAMI", "NAMI"]


def test_two_sessions_in_one_file(tmp_path: Path) -> None:
    f = write_trace(tmp_path / "t", [call("close", 3)])
    write_trace(f, [call("close", 4, pid=77, comm="sh")], append=True, first=start(T0 + 5))
    _, out, _ = kdump("-f", str(f))
    assert out.splitlines() == ["  4321 cat      CALL  close(3)", "    -1          STRT  ",
                                "    77 sh       CALL  close(4)"]  # fmt: skip
    _, out, _ = kdump("-T", "-f", str(f))
    assert out.splitlines()[1] == "    -1          1700000005.000000 STRT  "
    _, out, _ = kdump("-p", "77", "-f", str(f))  # a START belongs to no process
    assert out.splitlines() == ["    77 sh       CALL  close(4)"]


def test_truncated_file(cat_trace: Path, tmp_path: Path) -> None:
    data = cat_trace.read_bytes()
    offsets = [r.offset for r in F.read_records(data)]
    cut = tmp_path / "cut"
    cut.write_bytes(data[: offsets[6] + 70])  # inside the GIO record's payload
    status, out, err = kdump("-f", str(cut))
    assert status == 0
    assert out.splitlines() == CAT_LINES[:7]
    assert err == (f"kdump: {cut}: the file ends inside the record at offset {offsets[6]}"
                   " (70 of its 84 bytes)\n")  # fmt: skip
    cut.write_bytes(data[: offsets[3] + 10])  # inside a header
    status, out, err = kdump("-f", str(cut))
    assert (status, out.splitlines()) == (0, CAT_LINES[:4])
    assert err == (f"kdump: {cut}: the file ends inside the record at offset {offsets[3]}"
                   " (10 bytes of its 64-byte header)\n")  # fmt: skip


def test_corrupt_and_foreign_files(cat_trace: Path, tmp_path: Path) -> None:
    data = bytearray(cat_trace.read_bytes())
    second = [r.offset for r in F.read_records(bytes(data))][2]
    data[second + 59] = 0xFF  # a length of ~4 GiB
    bad = tmp_path / "bad"
    bad.write_bytes(bytes(data))
    status, out, err = kdump("-f", str(bad))
    assert status == 1
    assert out.splitlines() == CAT_LINES[:3]  # what came before is printed
    assert err == f"kdump: {bad}: corrupt record header at offset {second}\n"
    foreign = tmp_path / "foreign"
    foreign.write_bytes(b"\x7fELF" + bytes(100))
    assert kdump("-f", str(foreign)) == (
        1,
        "",
        f"kdump: {foreign}: not a ktrace file (no start record at offset 0)\n",
    )
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert kdump("-f", str(empty)) == (1, "", f"kdump: {empty}: not a ktrace file (it is empty)\n")
    assert kdump("-f", str(tmp_path / "none")) == (
        1,
        "",
        f"kdump: {tmp_path / 'none'}: No such file or directory\n",
    )


def test_usage_errors(cat_trace: Path) -> None:
    usage = "usage: kdump [-dHlnRTXx] [-f file] [-m maxdata] [-p pid] [-t trstr] [--json | --timeline FILE]\n"
    assert kdump("-q") == (1, "", "kdump: option -q not recognized\n" + usage)
    assert kdump("-f") == (1, "", "kdump: option -f requires argument\n" + usage)
    assert kdump("-f", str(cat_trace), "extra") == (
        1,
        "",
        "kdump: unexpected argument extra\n" + usage,
    )
    assert kdump("-t", "cq", "-f", str(cat_trace)) == (
        1,
        "",
        "kdump: unknown trace point 'q' in cq\n",
    )
    assert kdump("-p", "abc") == (1, "", "kdump: -p abc: invalid\n")


def test_follow_a_growing_file(tmp_path: Path) -> None:
    f = write_trace(tmp_path / "t", [call("close", 3)])
    env = dict(os.environ, PYTHONPATH=SRC)
    p = subprocess.Popen([sys.executable, "-m", "pydtrace.cli.kdump", "-l", "-f", str(f)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)  # fmt: skip
    try:
        assert p.stdout is not None
        assert p.stdout.readline() == b"  4321 cat      CALL  close(3)\n"
        whole = ret("close", 0).encode()
        with open(f, "ab") as fh:  # half a record: nothing yet
            fh.write(whole[:30])
        time.sleep(0.6)
        with open(f, "ab") as fh:
            fh.write(whole[30:])
        with F.Writer(str(f), append=True) as w:
            w.write(call("getpid"))
        assert p.stdout.readline() == b"  4321 cat      RET   close 0\n"
        assert p.stdout.readline() == b"  4321 cat      CALL  getpid()\n"
        assert p.poll() is None  # still following
    finally:
        p.kill()
        p.wait()


def test_broken_pipe_is_quiet(cat_trace: Path) -> None:
    env = dict(os.environ, PYTHONPATH=SRC)
    big = write_trace(cat_trace.parent / "big", CAT * 2000)
    p = subprocess.run(f"{sys.executable} -m pydtrace.cli.kdump -f {big} | head -1",
                       shell=True, capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert p.stdout == CAT_LINES[0] + "\n"
    assert "Traceback" not in p.stderr


# --- decode helpers -------------------------------------------------------------------------
def test_decode_signals_errno_flags() -> None:
    assert [D.signame(n) for n in (9, 31, 32, 34, 64, 65)] == [
        "SIGKILL",
        "SIGSYS",
        "SIGRT_0",
        "SIGRT_2",
        "SIGRT_32",
        "SIG 65",
    ]
    assert D.sigset(0) == "0<>"
    assert D.sigset((1 << 8) | 1) == "0x101<SIGHUP|SIGKILL>"
    assert D.sigset(U64 & ~(1 << 8)) == "~0x100<SIGKILL>"
    assert (D.errname(2), D.strerror(2)) == ("ENOENT", "No such file or directory")
    d = D.Decoder("aarch64")
    assert d.name(56) == "openat"  # the recorded ABI's numbers, not this machine's
    assert d.call(56, [U64 - 99, 0x10, 0o40000 | 0o100000, 0, 0, 0]) == (
        "openat(AT_FDCWD,0x10,0xc000<O_RDONLY|O_DIRECTORY|O_NOFOLLOW>)"
    )
    x = D.Decoder("x86_64")
    assert x.call(NR["openat"], [3, 0x10, 0o20200000 | 2, 0o600, 0, 0]) == (
        "openat(3,0x10,0x410002<O_RDWR|O_TMPFILE>,0600<S_IRUSR|S_IWUSR>)"
    )
    assert x.call(NR["mmap"], [0, 1, 0, 0x800000 | 1, 3, 0]) == (
        "mmap(0,0x1,0<PROT_NONE>,0x800001<MAP_SHARED|0x800000>,3,0)"
    )
    assert x.call(NR["socket"], [99, 3, 0, 0, 0, 0]) == "socket(<invalid=99>,SOCK_RAW,0)"
    assert x.call(NR["execve"], [1, 2, 3, 4, 5, 6]) == "execve(0x1,0x2,0x3)"


def test_vis() -> None:
    assert D.vis(b'a"b\\c\n\t\x01\x80\xa0\x001\x00x', D.VIS_NAMI) == (
        'a\\"b\\\\c\\n\\t\\^A\\M^@\\240\\0001\\0x'
    )
    assert D.vis(b'"\t\n', D.VIS_CSTYLE) == '"\t\n'


# --- writer/reader round trips ---------------------------------------------------------
records_st = st.builds(
    F.Record,
    type=st.sampled_from(
        [
            F.SYSCALL,
            F.SYSRET,
            F.NAMEI,
            F.GENIO,
            F.PSIG,
            F.STRUCT,
            F.USER,
            F.EXECARGS,
            F.EXECENV,
            F.FORK,
            F.EXIT,
            F.CSW,
            77,
        ]
    ),  # fmt: skip
    pid=st.integers(-(2**31), 2**31 - 1),
    tid=st.integers(-(2**31), 2**31 - 1),
    payload=st.binary(max_size=300),
    sec=st.integers(-(2**63), 2**63 - 1),
    nsec=st.integers(0, 999_999_999),
    comm=st.text(st.characters(min_codepoint=1, max_codepoint=0x7E), max_size=15),
    cpu=st.integers(-1, 4096),
    lost=st.integers(0, 2**64 - 1),
)


def _same(a: F.Record, b: F.Record) -> bool:
    return (a.type, a.pid, a.tid, a.payload, a.sec, a.nsec, a.comm, a.cpu, a.lost) == (
        b.type, b.pid, b.tid, b.payload, b.sec, b.nsec, b.comm, b.cpu, b.lost)  # fmt: skip


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(recs=st.lists(records_st, max_size=12), sessions=st.integers(1, 3), data=st.data())
def test_round_trip_with_random_cut(tmp_path: Path, recs, sessions, data) -> None:
    path = tmp_path / "rt"
    written = []
    for i in range(sessions):
        s = start(T0 + i, command=f"session {i}")
        write_trace(path, recs, append=i > 0, first=s)
        written += [s, *recs]
    blob = path.read_bytes()
    back = list(F.read_records(blob))
    assert all(isinstance(r, F.Record) for r in back)
    assert len(back) == len(written) and all(map(_same, back, written))
    ends = [r.offset + F.HEADER_SIZE + len(r.payload) for r in back]
    cut = data.draw(st.integers(4, len(blob)))
    got = list(F.read_records(blob[:cut]))
    complete = [r for r, e in zip(back, ends) if e <= cut]
    assert [r.offset for r in got if isinstance(r, F.Record)] == [r.offset for r in complete]
    if cut in ends:
        assert not got or isinstance(got[-1], F.Record)
    else:
        tail = got[-1]
        assert isinstance(tail, F.Truncated)
        assert tail.offset == (ends[len(complete) - 1] if complete else 0)
        assert tail.have == cut - tail.offset
        whole = back[len(complete)]
        assert tail.need == (F.HEADER_SIZE + len(whole.payload) if tail.have >= F.HEADER_SIZE
                             else 0)  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(recs=st.lists(records_st, min_size=1, max_size=6))
def test_kdump_prints_any_records(recs) -> None:
    """Whatever the payloads, every record prints (a short one as `invalid record`) and the
    printer never fails: a line per record, each starting with its pid."""
    import io

    from pydtrace.ktrace.kdump import Options, Printer

    out = io.BytesIO()
    pr = Printer(Options(), out)
    pr.record(start())
    for r in recs:
        r.lost = 0
        pr.record(r)
    heads = [ln for ln in out.getvalue().decode("utf-8", "surrogateescape").split("\n")
             if ln and ln[:6].strip().lstrip("-").isdigit()]  # fmt: skip
    assert len(heads) >= len(recs)
    js = io.BytesIO()
    pj = Printer(Options(json=True), js)
    for r in recs:
        pj.record(r)
    assert [json.loads(ln)["pid"] for ln in js.getvalue().splitlines()] == [r.pid for r in recs]


def test_bad_bytes_are_an_invalid_record(tmp_path: Path) -> None:
    """A payload its format rules out (too short for its type) is shown, and
    kdump goes on: that is the file's fault, not ours."""
    f = write_trace(tmp_path / "t", [rec(F.SYSRET, b"\1\0"), rec(F.EXIT, b""), ret("close")])
    status, out, err = kdump("-f", str(f))
    assert (status, err) == (0, "")
    assert [ln[16:] for ln in out.splitlines()] == [
        "RET   invalid record (2 bytes)",
        "EXIT  invalid record (0 bytes)",
        "RET   close 0",
    ]
    status, out, err = kdump("--json", "-f", str(f))
    assert (status, err) == (0, "")
    lines = out.splitlines()[1:]  # after the START
    assert [json.loads(ln).get("invalid") for ln in lines] == [True, True, None]


@pytest.mark.parametrize("json_out", [False, True])
def test_a_decoder_bug_is_an_internal_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    json_out: bool,
) -> None:  # fmt: skip
    """Any other exception of the decoder is a bug: the records before it are
    printed, then one line (no traceback) and exit status 70 (EX_SOFTWARE),
    never `invalid record`."""
    from pydtrace.cli import kdump as cli

    f = write_trace(tmp_path / "t", [call("close", 3), ret("close")])

    def broken(self: D.Decoder, code: int, error: int, retval: int) -> str:
        raise KeyError("no such table")

    monkeypatch.setattr(D.Decoder, "ret", broken)
    status = cli.main([*(["--json"] if json_out else []), "-f", str(f)])
    out, err = capsys.readouterr()
    assert status == 70
    offset = [r.offset for r in F.read_records(f.read_bytes())][2]
    assert err == (
        f"kdump: internal error: decoding the RET record at offset {offset}: "
        "KeyError: 'no such table'\n"
    )
    assert len(out.splitlines()) == 1 + json_out  # the CALL before it (and the START)


# --- bounded input: read as it comes, checked before it is trusted --------------------------
def run_limited(args: list[str], stdin=None, mem: int = 200 << 20, timeout: float = 120):
    """kdump ARGS with its address space capped at `mem` bytes."""
    import resource

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))

    env = dict(os.environ, PYTHONPATH=SRC)
    return subprocess.run([sys.executable, "-m", "pydtrace.cli.kdump", *args], stdin=stdin,
                          capture_output=True, env=env, timeout=timeout, preexec_fn=cap)  # fmt: skip


def test_random_bytes_stop_at_the_first_header() -> None:
    # it used to read all of its input (1.6 GB after 8 s) before looking at it
    with open("/dev/urandom", "rb") as rnd:
        p = run_limited(["-f", "-"], stdin=rnd, timeout=30)
    assert (p.returncode, p.stdout) == (1, b"")
    assert p.stderr == b"kdump: stdin: not a ktrace file (no start record at offset 0)\n"
    p = run_limited(["-f", "/dev/urandom"], timeout=30)
    assert p.stderr == b"kdump: /dev/urandom: not a ktrace file (no start record at offset 0)\n"


def test_a_start_then_random_bytes_stops_at_the_next_header(tmp_path: Path) -> None:
    first = start().encode()
    r, w = os.pipe()
    feeder = subprocess.Popen(  # a start record, then random bytes without end
        ["sh", "-c", 'cat "$0"; exec cat /dev/urandom', str(write_trace(tmp_path / "t", []))],
        stdout=w,
    )
    os.close(w)
    try:
        with os.fdopen(r, "rb") as rfh:
            p = run_limited(["-f", "-"], stdin=rfh, timeout=30)
    finally:
        feeder.kill()
        feeder.wait()
    assert (p.returncode, p.stdout) == (1, b"")
    assert p.stderr.startswith(
        f"kdump: stdin: corrupt record header at offset {len(first)}".encode()
    )


def test_a_huge_length_is_refused_before_it_is_read(tmp_path: Path) -> None:
    head = bytearray(call("close", 3).encode())
    struct.pack_into("<Q", head, 56, F.MAX_PAYLOAD + 1)  # 16 MiB + 1 promised
    f = write_trace(tmp_path / "t", [call("close", 4)])
    with open(f, "ab") as fh:
        fh.write(bytes(head[:64]))
    off = f.stat().st_size - 64
    p = run_limited(["-f", str(f)])
    assert (p.returncode, p.stdout.decode(), p.stderr.decode()) == (
        1,
        "  4321 cat      CALL  close(4)\n",
        f"kdump: {f}: corrupt record header at offset {off}\n",
    )
    struct.pack_into("<Q", head, 56, 1 << 62)  # would have been allocated or mapped
    f.write_bytes(start().encode() + bytes(head[:64]))
    p = run_limited(["-f", str(f)])
    assert (
        p.stderr.decode()
        == f"kdump: {f}: corrupt record header at offset {len(start().encode())}\n"
    )


def largest_records(path: Path, strings: bool) -> bytes:
    """A trace of a 16 MiB GIO record (the format's largest) and, with
    strings, a 16 MiB ARGS record of 4 million strings; the GIO data."""
    data = bytes(range(256)) * (F.MAX_PAYLOAD // 256)
    recs = [rec(F.GENIO, F.genio_payload(1, True, data[:-8]))]
    if strings:
        recs.append(
            rec(F.EXECARGS, (b"arg\0" * (F.MAX_PAYLOAD // 4))[:-1])
        )  # the last unterminated
    write_trace(path, recs)
    return data[:-8]


@pytest.mark.parametrize("opts", [["-x"], ["--json"]])
def test_the_largest_record_prints_in_bounded_memory(tmp_path: Path, opts) -> None:
    # printed a block at a time, in under 200 MB of address space (the whole
    # text used to be built first: 1.4 GB for -x)
    data = largest_records(tmp_path / "big", False)
    p = run_limited([*opts, "-f", str(tmp_path / "big")])
    assert (p.returncode, p.stderr) == (0, b"")
    lines = p.stdout.split(b"\n")
    if opts == ["--json"]:
        assert bytes.fromhex(json.loads(lines[1])["data"]) == data  # after the START
    else:
        assert lines[:2] == [
            b"  4321 cat      GIO   fd 1 wrote 16777208 bytes",
            b"\t" + data[:24].hex(" ").encode(),
        ]
        assert len(lines) == 2 + -(-len(data) // 24)


@pytest.mark.slow
@pytest.mark.parametrize("opts", [[], ["-x"], ["-X"], ["--json"]])
def test_records_of_the_largest_size_print_in_bounded_memory(tmp_path: Path, opts) -> None:
    largest_records(tmp_path / "big", True)
    p = run_limited([*opts, "-f", str(tmp_path / "big")], timeout=300)
    assert (p.returncode, p.stderr) == (0, b"")
    lines = p.stdout.split(b"\n")
    if opts == ["--json"]:
        argv = json.loads(lines[2])
        assert (len(argv["strings"]), argv["strings"][-1], argv["terminated"]) == (
            1 << 22,
            "arg",
            False,
        )
        return
    assert lines[0] == b"  4321 cat      GIO   fd 1 wrote 16777208 bytes"
    assert lines[-3:] == [b'\t[4194303] = "arg"', b"\tunterminated argument", b""]


def test_printing_is_unchanged_by_blocks() -> None:
    from pydtrace.ktrace.kdump import BLOCK, show_data

    data = bytes(range(256)) * (3 * BLOCK // 256) + b"\n\0" + b"7\0"
    whole = D.vis(data, D.VIS_CSTYLE)  # the text mode's escapes, as one string
    text = "".join(show_data(data, 0, 10_000_000))
    assert text == '       "' + whole.replace("\n", "\n\t") + '"\n'
    assert "".join(show_data(data, 1, 80)).split("\n\t")[1] == data[24:48].hex(" ")
    rows = "".join(show_data(data, 2, 80)).splitlines()
    assert rows[1] == "   0010:  " + data[16:32].hex(" ") + "  " + "." * 16
    assert len(rows) == -(-len(data) // 16)


@given(st.binary(max_size=40), st.sampled_from([D.VIS_NAMI, D.VIS_CSTYLE, 0, D.VIS_DQ]))
@settings(max_examples=300, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
def test_vis_by_table_is_vis_by_byte(data: bytes, flags: int) -> None:
    n = len(data)
    by_byte = "".join(
        D.vis_char(c, data[i + 1] if i + 1 < n else 0, flags) for i, c in enumerate(data)
    )
    assert D.vis(data, flags) == by_byte


def test_number_options_of_any_length() -> None:
    many = "9" * 5000  # int() refuses more than 4300 digits
    assert kdump("-m", many) == (1, "", f"kdump: -m {many}: too large\n")
    assert kdump("-p", "-" + many) == (1, "", f"kdump: -p -{many}: too small\n")
    assert kdump("-m", "+-5") == (1, "", "kdump: -m +-5: invalid\n")
