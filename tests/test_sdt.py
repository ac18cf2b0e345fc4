"""The sdt provider: kernel tracepoints as sdt:<group>::<event> on the eBPF
engine, args->field and args[N] typed from tracefs format files, -l / -lv."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import bpf_maps_ok, need, pydtrace
from conftest import compile_c as cc
from pydtrace.lang import types as T
from pydtrace.probes import tracefs
from pydtrace.probes.providers import sdt


def _tracefs_ok() -> bool:
    try:
        return tracefs.has_event("task", "task_rename")
    except tracefs.TracefsError:
        return False


@pytest.fixture(autouse=True)
def _kernel():
    need(bpf_maps_ok(), "needs root and bpf(2)")
    need(_tracefs_ok(), "no tracefs task:task_rename")


SIGNALS = """
    #include <signal.h>
    #include <unistd.h>
    #include <sys/prctl.h>
    static void h(int s) { (void)s; }
    int main(void) {
        signal(SIGUSR1, h);
        signal(SIGUSR2, h);
        prctl(PR_SET_NAME, "renamed-sdt", 0, 0, 0);
        kill(getpid(), SIGUSR1);
        kill(getpid(), SIGUSR2);
        kill(getpid(), SIGUSR1);
        return 0;
    }
"""


def test_fields_by_name_and_char_arrays(tmp_path: Path) -> None:
    exe = cc(tmp_path, "sigs", SIGNALS)
    r = pydtrace(
        "-q", "-c", exe,
        "-n", "sdt:signal::signal_generate /args->pid == $target/ "
              '{ printf("%d %s %d\\n", args->sig, args->comm, args->code); }',
        "-n", "sdt:task::task_rename /args->pid == $target/ "
              '{ printf("[%s] -> [%s] %d\\n", args->oldcomm, args->newcomm, args->oom_score_adj); }',
    )  # fmt: skip
    assert r.status == 0, r.err
    assert r.out == (  # (not the -c child's rename at its exec: traced from the exec on)
        "[sigs] -> [renamed-sdt] 0\n10 renamed-sdt 0\n12 renamed-sdt 0\n10 renamed-sdt 0\n\n"
    )


def test_args_by_index_and_argN(tmp_path: Path) -> None:
    exe = cc(tmp_path, "sigs", SIGNALS)
    r = pydtrace(
        "-q", "-c", exe,
        "-n", "sdt:signal::signal_generate /arg4 == $target/ "
              '{ printf("%d %s %d\\n", args[0], stringof(args[3]), args[4] == $target); }',
        "-n", "sdt:task::task_rename /args[0] == $target/ "
              '{ printf("%s %s\\n", args[1], stringof(args[2])); }',
    )  # fmt: skip
    assert r.status == 0, r.err
    assert r.out == ("sigs renamed-sdt\n10 renamed-sdt 1\n12 renamed-sdt 1\n10 renamed-sdt 1\n\n")


def test_data_loc_string_and_pointer_field(tmp_path: Path) -> None:
    exe = cc(tmp_path, "opener", """
        #include <fcntl.h>
        #include <unistd.h>
        int main(void) {
            char path[] = "/nonexistent-sdt-test";  /* on the stack: mapped when read */
            int fd = openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
            return fd < 0 ? 0 : 1;
        }
    """)  # fmt: skip
    wrapper = tmp_path / "wrapper"  # the target execs the command: the exec seen (its own is not)
    wrapper.write_text(f"#!/bin/sh\nexec {exe}\n")
    wrapper.chmod(0o755)
    r = pydtrace(
        "-q", "-c", str(wrapper),
        "-n", "sdt:sched::sched_process_exec /args->pid == $target/ "
              '{ printf("%s|%s|%d\\n", args->filename, stringof(args[0]), args->old_pid == $target); }',
        "-n", 'sdt:syscalls::sys_enter_openat /pid == $target && (int)args->dfd == -100/ '
              '{ printf("%s %x\\n", copyinstr(args->filename), args->flags); }',
    )  # fmt: skip
    assert r.status == 0, r.err
    lines = [x for x in r.out.splitlines() if x]
    assert lines.count(f"{exe}|{exe}|1") == 1, lines  # (after sh's own opens)
    assert lines[-1] == "/nonexistent-sdt-test 80000"


def test_unknown_tracepoint_and_member() -> None:
    r = pydtrace("-n", "sdt:nosuch::x { }")
    assert (r.status, r.out) == (1, "")
    assert r.err == (
        "pydtrace: invalid probe specifier sdt:nosuch::x { }: "
        "probe description sdt:nosuch::x does not match any probes\n"
    )
    r = pydtrace("-n", "sdt:task::task_rename { trace(args->nosuch); }")
    assert r.status == 1
    assert r.err.endswith(": nosuch is not a member of struct task_task_rename\n")


def test_list_and_types() -> None:
    r = pydtrace("-l", "-n", "sdt:task::task_rename")
    assert r.status == 0, r.err
    row = r.out.splitlines()[1].split()
    assert row[1:] == ["sdt", "task", "task_rename"]
    r = pydtrace("-lv", "-n", "sdt:task::task_rename")
    assert r.out.split("\tArgument Types\n")[1] == (
        "\t\targs[0]: pid_t\n\t\targs[1]: char[16]\n\t\targs[2]: char[16]\n\t\targs[3]: short\n"
        # the names args-> takes, with the types it gives (a char array reads as a string)
        "\n\tArgument Members\n\t\targs->pid: pid_t\n\t\targs->oldcomm: string\n"
        "\t\targs->newcomm: string\n\t\targs->oom_score_adj: short\n\n"
    )
    assert "\tArgument Attributes\n\t\tIdentifier Names: Private\n" in r.out
    r = pydtrace("-lv", "-n", "sdt:sched::sched_process_exec")
    assert r.out.split("\tArgument Types\n")[1] == (
        "\t\targs[0]: char *\n\t\targs[1]: pid_t\n\t\targs[2]: pid_t\n"
        "\n\tArgument Members\n\t\targs->filename: string\n\t\targs->pid: pid_t\n"
        "\t\targs->old_pid: pid_t\n\n"
    )
    # every tracepoint is listed, without reading its format
    r = pydtrace("-l")
    n = sum(1 for line in r.out.splitlines() if line.split()[1:2] == ["sdt"])
    events = tracefs.available_events()
    assert n == sum(len(v) for g, v in events.items() if g not in sdt.SKIP_GROUPS)


def test_format_types() -> None:
    info = sdt.tracepoint_args("task", "task_rename")
    st = info.args_type.r.target
    by = {m.name: m for m in st.members}
    assert (by["pid"].offset, by["pid"].type.r.size, by["pid"].type.r.signed) == (8, 4, True)
    assert by["oldcomm"].type.is_string() and by["oldcomm"].offset == 12
    assert [f.kind for f in info.fields] == ["int", "array", "array", "int"]
    exe = sdt.tracepoint_args("sched", "sched_process_exec")
    assert exe.fields[0].kind == "string" and exe.argtypes[0].same(T.CHARP)
    assert exe.fields[0].mem_off >= exe.record_size


def test_begin_does_not_read_tracefs_formats() -> None:
    tracefs._formats.clear()
    from pydtrace.probes.catalogue import ProbeDesc
    from pydtrace.probes.providers import default_catalogue

    cat = default_catalogue()
    assert [p.fqn for p in cat.match(ProbeDesc("dtrace", "", "", "BEGIN"))] == ["dtrace:::BEGIN"]
    assert not tracefs._formats
    assert os.path.isdir(tracefs.root())


def test_a_probe_name_alone_asks_each_group_not_the_whole_list(monkeypatch) -> None:
    """`BEGIN` is `:::BEGIN`: every provider is asked for probes of that name,
    sdt too. It read the kernel's whole available_events for that (which waits
    tens of ms while another tracer's events are torn down: up to 49 ms of a
    tool's start); a name alone now looks in each group for that event. The
    same name as a tracepoint's is still found, in each group that has it."""
    from pydtrace.probes.catalogue import ProbeDesc
    from pydtrace.probes.providers import default_catalogue

    need(_tracefs_ok(), "no tracefs here")

    def whole_list(*a, **k):
        raise AssertionError("available_events read")

    monkeypatch.setattr(tracefs, "available_events", whole_list)
    cat = default_catalogue()
    assert [p.fqn for p in cat.match(ProbeDesc(name="BEGIN"))] == ["dtrace:::BEGIN"]
    found = [p.fqn for p in cat.match(ProbeDesc(name="sched_switch"))]
    assert "sdt:sched::sched_switch" in found and all(f.endswith("::sched_switch") for f in found)
    assert [p.fqn for p in cat.match(ProbeDesc("sdt", "sched", "", "sched_switch"))] == [
        "sdt:sched::sched_switch"
    ]
    assert cat.match(ProbeDesc("sdt", "sched", "", "no_such_event")) == []
