"""The syscall tables and the syscall provider's catalogue and listing."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import need
from pydtrace.lang import types as T
from pydtrace.probes.catalogue import Catalogue, ProbeDesc, parse_probe_desc
from pydtrace.probes.listing import format_listing
from pydtrace.probes.providers import default_catalogue
from pydtrace.probes.providers.dtrace import DtraceProvider
from pydtrace.probes.providers.profile import ProfileProvider
from pydtrace.probes.providers.syscall import SyscallProvider, ctype
from pydtrace.probes.syscalls import (
    AUDIT_ARCH_AARCH64,
    AUDIT_ARCH_X86_64,
    UnknownArch,
    table,
)
from pydtrace.probes.syscalls.generate import parse_format

TRACEFS = Path("/sys/kernel/tracing/events/syscalls")


def catalogue(arch: str = "x86_64") -> Catalogue:
    return Catalogue([DtraceProvider(), ProfileProvider(), SyscallProvider(arch)])


@pytest.mark.parametrize(
    "name,x86,arm",
    [
        ("read", 0, 63),
        ("write", 1, 64),
        ("close", 3, 57),
        ("openat", 257, 56),
        ("execve", 59, 221),
        ("clone", 56, 220),
        ("exit_group", 231, 94),
        ("newfstatat", 262, 79),
        ("getdents64", 217, 61),
        ("statx", 332, 291),
        ("clone3", 435, 435),
        ("openat2", 437, 437),
        ("file_setattr", 469, 469),
    ],
)
def test_known_numbers(name: str, x86: int, arm: int) -> None:
    assert table("x86_64").by_name[name].nr == x86
    assert table("aarch64").by_name[name].nr == arm
    assert table("x86_64").by_nr[x86].name == name
    assert table("aarch64").by_nr[arm].name == name


def test_counts_and_audit_arch() -> None:
    x86, arm = table("x86_64"), table("aarch64")
    assert (len(x86.calls), len(arm.calls)) == (383, 325)
    assert (x86.audit_arch, arm.audit_arch) == (AUDIT_ARCH_X86_64, AUDIT_ARCH_AARCH64)
    assert (AUDIT_ARCH_X86_64, AUDIT_ARCH_AARCH64) == (0xC000003E, 0xC00000B7)
    assert [s.nr for s in x86.calls] == sorted(x86.by_nr)
    assert table("amd64") is table("x86_64") and table("arm64") is table("aarch64")
    with pytest.raises(UnknownArch):
        table("sparc64")


def test_abi_names_and_probe_names() -> None:
    x86 = table("x86_64")
    for abi, event, nr in [
        ("stat", "newstat", 4),
        ("fstat", "newfstat", 5),
        ("lstat", "newlstat", 6),
        ("uname", "newuname", 63),
        ("sendfile", "sendfile64", 40),
        ("umount2", "umount", 166),
    ]:
        sc = x86.by_name[abi]
        assert (sc.name, sc.abi, sc.nr) == (event, abi, nr)
        assert x86.by_name[event] is sc
    arm = table("aarch64")
    assert (arm.by_name["fstat"].name, arm.by_name["fstat"].nr) == ("newfstat", 80)
    assert (arm.by_name["fadvise64"].name, arm.by_name["fadvise64"].nr) == ("fadvise64_64", 223)
    for legacy in ("open", "stat", "fork", "vfork", "pipe", "dup2", "unlink", "poll"):
        assert legacy not in arm.by_name and legacy in x86.by_name
    assert "arch_specific_syscall" not in arm.by_name


def test_arguments() -> None:
    x86, arm = table("x86_64"), table("aarch64")
    assert x86.by_name["read"].args == (
        ("unsigned int", "fd"),
        ("char *", "buf"),
        ("size_t", "count"),
    )
    assert x86.by_name["openat"].args == arm.by_name["openat"].args
    assert [t for t, _ in x86.by_name["execve"].args] == ["const char *"] + [
        "const char *const *"
    ] * 2
    assert x86.by_name["io_submit"].args[2] == ("struct iocb **", "iocbpp")
    # arm64 passes clone's tls before child_tidptr
    assert [n for _, n in x86.by_name["clone"].args][3:] == ["child_tidptr", "tls"]
    assert [n for _, n in arm.by_name["clone"].args][3:] == ["tls", "child_tidptr"]
    assert x86.by_name["getpid"].args == () and x86.by_name["tuxcall"].args == ()
    assert x86.by_name["finit_module"].nargs == 3  # no tracefs event: from the prototype


def test_ctype_shapes_keep_kernel_spelling() -> None:
    t = ctype("const char *")
    assert str(t) == "const char *" and t.is_pointer() and t.r.target is T.CHAR
    pp = ctype("const char *const *")
    assert pp.is_pointer() and pp.r.target.is_pointer()
    assert ctype("size_t").r is T.ULONG and str(ctype("size_t")) == "size_t"
    assert ctype("umode_t").int_size() == 2 and not ctype("umode_t").is_signed()
    s = ctype("struct stat *")
    assert str(s) == "struct stat *" and s.r.target.is_struct() and s.r.target.tag == "stat"
    assert ctype("unsigned").r is T.UINT and ctype("const int").r is T.INT


HEADER = "   ID   PROVIDER            MODULE                          FUNCTION NAME\n"


def _listing(desc: str, verbose: bool = False) -> str:
    c = catalogue()
    return format_listing(c.match(parse_probe_desc(desc)), verbose=verbose, catalogue=c)


def test_listing_open_glob() -> None:
    assert _listing("syscall::open*:entry") == HEADER + (
        "   21    syscall           vmlinux                              open entry\n"
        "  531    syscall           vmlinux                            openat entry\n"
        "  625    syscall           vmlinux                 open_by_handle_at entry\n"
        "  699    syscall           vmlinux                         open_tree entry\n"
        "  717    syscall           vmlinux                           openat2 entry\n"
        "  777    syscall           vmlinux                    open_tree_attr entry\n"
    )


def test_listing_provider_ids_follow_dtrace_and_profile() -> None:
    c = catalogue()
    probes = c.match(ProbeDesc(provider="syscall"))
    assert len(probes) == 2 * 383 and len(c) == 16 + 2 * 383
    assert [(p.id, p.function, p.name) for p in probes[:3]] == [
        (17, "read", "entry"),
        (18, "read", "return"),
        (19, "write", "entry"),
    ]
    assert {p.module for p in probes} == {"vmlinux"}
    assert probes[0].data is table("x86_64").by_name["read"]
    # ABI names are not probe names: stat's probe is newstat
    assert c.match(parse_probe_desc("syscall::stat:entry")) == []
    assert len(c.match(parse_probe_desc("syscall::newstat:"))) == 2
    assert [p.function for p in c.match(parse_probe_desc("syscall::*stat:entry"))][:3] == [
        "newstat",
        "newfstat",
        "newlstat",
    ]


def test_listing_verbose_read_entry_and_return() -> None:
    attrs = (
        "\n\tProbe Description Attributes\n"
        "\t\tIdentifier Names: Private\n"
        "\t\tData Semantics:   Private\n"
        "\t\tDependency Class: Unknown\n"
        "\n\tArgument Attributes\n"
        "\t\tIdentifier Names: Private\n"
        "\t\tData Semantics:   Private\n"
        "\t\tDependency Class: ISA\n"
        "\n\tArgument Types\n"
    )
    assert _listing("syscall::read:entry", verbose=True) == HEADER + (
        "   17    syscall           vmlinux                              read entry\n"
        + attrs
        + "\t\targs[0]: unsigned int\n\t\targs[1]: char *\n\t\targs[2]: size_t\n\n"
    )
    assert _listing("syscall::read:return", verbose=True) == HEADER + (
        "   18    syscall           vmlinux                              read return\n"
        + attrs
        + "\t\targs[0]: long\n\n"
    )


def test_aarch64_catalogue() -> None:
    c = catalogue("aarch64")
    (p,) = c.match(parse_probe_desc("syscall::openat:entry"))
    assert p.data.nr == 56 and [str(t) for t in p.argtypes][1] == "const char *"
    assert c.match(parse_probe_desc("syscall::open:entry")) == []


def test_unknown_machine_has_no_syscall_probes() -> None:
    assert list(SyscallProvider("sparc64").probes()) == []


def test_cli_listing(run) -> None:
    assert "syscall" in default_catalogue().providers
    if table().arch != "x86_64":
        pytest.skip("expected ids are those of x86_64")
    r = run("-l", "-n", "syscall::openat*:entry")
    assert (r.status, r.err) == (0, "")
    assert r.out == HEADER + (
        "  531    syscall           vmlinux                            openat entry\n"
        "  717    syscall           vmlinux                           openat2 entry\n"
    )
    r = run("-l", "-P", "syscall")
    assert r.status == 0 and r.out.count("\n") == 1 + 2 * 383


def test_x86_64_table_matches_running_kernel_tracefs() -> None:
    """Every x86_64 call the running kernel has an event for has its arguments;
    every event the kernel has is in the table."""
    if table().arch != "x86_64":
        pytest.skip("the running kernel is not x86_64")
    try:
        events = sorted(p.name[len("sys_enter_") :] for p in TRACEFS.glob("sys_enter_*"))
    except OSError:
        events = []
    if not events:
        need(False, f"no syscall events under {TRACEFS}")
    x86 = table("x86_64")
    probe_names = {s.name for s in x86.calls}
    assert [e for e in events if e not in probe_names] == []
    for e in events:
        try:
            args = parse_format(TRACEFS / f"sys_enter_{e}" / "format")
        except OSError:
            need(False, f"cannot read tracefs format of {e}")
        assert x86.by_name[e].args == args, e
