"""probes/tracefs: event format parsing (fixed texts, exact fields) and the live tracefs."""

from __future__ import annotations

import os

import pytest

from conftest import need
from pydtrace.probes import tracefs
from pydtrace.probes.tracefs import Field, NoSuchEvent, parse_field, parse_format

OPENAT = """name: sys_enter_openat
ID: 782
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int dfd;\toffset:16;\tsize:8;\tsigned:0;
\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;
\tfield:int flags;\toffset:32;\tsize:8;\tsigned:0;
\tfield:umode_t mode;\toffset:40;\tsize:8;\tsigned:0;

print fmt: "dfd: 0x%08lx, filename: 0x%08lx", ((unsigned long)(REC->dfd)), ((unsigned long)(REC->filename))
"""

EXEC = """name: sched_process_exec
ID: 365
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;
\tfield:pid_t pid;\toffset:12;\tsize:4;\tsigned:1;
\tfield:pid_t old_pid;\toffset:16;\tsize:4;\tsigned:1;

print fmt: "filename=%s pid=%d old_pid=%d", __get_str(filename), REC->pid, REC->old_pid
"""


def test_parse_syscall_format():
    f = parse_format(OPENAT)
    assert (f.name, f.id, f.record_size) == ("sys_enter_openat", 782, 48)
    assert f.print_fmt.startswith('"dfd: 0x%08lx')
    assert [c.name for c in f.common_fields] == [
        "common_type",
        "common_flags",
        "common_preempt_count",
        "common_pid",
    ]
    assert f.field("common_pid") == Field("common_pid", "int", 4, 4, True, common=True)
    assert f.event_fields == (
        Field("__syscall_nr", "int", 8, 4, True),
        Field("dfd", "int", 16, 8, False),
        Field("filename", "const char *", 24, 8, False),
        Field("flags", "int", 32, 8, False),
        Field("mode", "umode_t", 40, 8, False),
    )
    with pytest.raises(KeyError):
        f.field("nope")


def test_parse_data_loc_format():
    f = parse_format(EXEC)
    assert f.field("filename") == Field("filename", "char", 8, 4, False, data_loc=True, array_len=0)
    assert f.field("old_pid") == Field("old_pid", "pid_t", 16, 4, True)
    assert f.record_size == 20


@pytest.mark.parametrize(
    "decl, expect",
    [
        ("unsigned long args[6]", ("args", "unsigned long", 6, False)),
        ("unsigned long args[]", ("args", "unsigned long", 0, False)),
        ("char comm[16]", ("comm", "char", 16, False)),
        ("const char *const * argv", ("argv", "const char *const *", None, False)),
        ("struct file_lock_core * blocker", ("blocker", "struct file_lock_core *", None, False)),
        ("__data_loc u64[] addrs", ("addrs", "u64", 0, True)),
        ("__rel_loc char[] name", ("name", "char", 0, True)),
        ("unsigned  int   x", ("x", "unsigned int", None, False)),
    ],
)
def test_parse_field_declarations(decl, expect):
    f = parse_field(decl, 8, 8, False)
    assert (f.name, f.type, f.array_len, f.data_loc) == expect
    assert f.rel_loc == decl.startswith("__rel_loc")


def test_parse_field_refuses_garbage():
    with pytest.raises(ValueError, match="cannot parse tracefs field declaration"):
        parse_field("[6]", 0, 8, False)


# ------------------------------------------------------------------ live tracefs


@pytest.fixture
def live():
    try:
        tracefs.root()
    except tracefs.TracefsError as e:
        need(False, str(e))


def test_root_and_ids(live):
    assert tracefs.root() in tracefs.CANDIDATES
    fmt = tracefs.event_format("raw_syscalls", "sys_enter")
    assert tracefs.event_id("raw_syscalls", "sys_enter") == fmt.id
    assert fmt.name == "sys_enter"
    assert fmt.field("id") == Field("id", "long", 8, 8, True)
    assert fmt.field("args") == Field("args", "unsigned long", 16, 48, False, array_len=6)
    assert fmt.field("common_type").offset == 0 and fmt.field("common_type").common


def test_syscall_event_fields(live):
    need(tracefs.has_event("syscalls", "sys_enter_openat"), "no syscall tracepoints")
    fmt = tracefs.event_format("syscalls", "sys_enter_openat")
    assert [(f.name, f.type, f.offset, f.size) for f in fmt.event_fields] == [
        ("__syscall_nr", "int", 8, 4),
        ("dfd", "int", 16, 8),
        ("filename", "const char *", 24, 8),
        ("flags", "int", 32, 8),
        ("mode", "umode_t", 40, 8),
    ]
    assert tracefs.event_format("syscalls", "sys_enter_openat") is fmt  # cached


def test_missing_events(live):
    with pytest.raises(NoSuchEvent) as e:
        tracefs.event_id("syscalls", "sys_enter_no_such_call")
    assert str(e.value) == "no tracepoint syscalls:sys_enter_no_such_call in this kernel"
    assert isinstance(e.value, LookupError)
    with pytest.raises(NoSuchEvent) as e:
        tracefs.event_format("nogroup", "noevent")
    assert str(e.value) == "no tracepoint nogroup:noevent in this kernel"
    with pytest.raises(NoSuchEvent) as e:
        tracefs.event_id("..", "x")
    assert str(e.value) == "invalid tracepoint name ..:x"
    assert tracefs.has_event("raw_syscalls", "sys_exit") is True
    assert tracefs.has_event("raw_syscalls", "nope") is False


def test_available_events(live):
    groups = tracefs.available_events("raw_syscalls")
    assert list(groups) == ["raw_syscalls"]
    assert sorted(groups["raw_syscalls"]) == ["sys_enter", "sys_exit"]
    everything = tracefs.available_events()
    assert "sys_enter" in everything["raw_syscalls"]
    ids = os.listdir(os.path.join(tracefs.root(), "events", "raw_syscalls"))
    assert "sys_enter" in ids


def test_root_mounts_when_missing(tmp_path, monkeypatch):
    first, second = tmp_path / "tracing", tmp_path / "debug-tracing"
    first.mkdir()
    mounted = []

    def fake_mount(path: str) -> bool:
        mounted.append(path)
        os.mkdir(os.path.join(path, "events"))
        return True

    monkeypatch.setattr(tracefs, "CANDIDATES", (str(first), str(second)))
    monkeypatch.setattr(tracefs, "_root", None)
    monkeypatch.setattr(tracefs, "_mount", fake_mount)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert tracefs.root() == str(first)
    assert mounted == [str(first)]


def test_root_missing_messages(tmp_path, monkeypatch):
    first = tmp_path / "tracing"
    monkeypatch.setattr(tracefs, "CANDIDATES", (str(first), str(tmp_path / "other")))
    monkeypatch.setattr(tracefs, "_root", None)
    monkeypatch.setattr(tracefs, "_mount", lambda path: False)
    with pytest.raises(tracefs.TracefsError) as e:
        tracefs.root()
    assert str(e.value) == f"tracefs is not available (no {first})"
    first.mkdir()
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(tracefs.TracefsError) as e:
        tracefs.root()
    assert str(e.value) == f"tracefs is not accessible at {first} (needs root)"
