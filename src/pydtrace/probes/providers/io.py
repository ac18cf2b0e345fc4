"""The io provider: `io:vmlinux::start`, `done`, `wait-start`, `wait-done`.

Every probe has dtrace's three arguments: args[0] a `bufinfo_t *`, args[1]
a `devinfo_t *`, args[2] a `fileinfo_t *` (the structures and B_* flags of
dtrace's io.d). Linux has no kprobes here, so each probe is one block-layer
tracepoint (TRACEPOINTS); the eBPF engine translates its record into the
three structures in the prologue (engines/ebpf/providers/io.py). Device
names come from /sys/class/block and /proc/devices when the program is
compiled. docs/internals/kernel-tracepoints.md has the field-by-field mapping.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import cache

from pydtrace.lang.dataclass import dataclass
from pydtrace.lang.procfs import FILEINFO
from pydtrace.probes.catalogue import PROVIDER_ATTRIBUTES, ProbeTuple, Provider
from pydtrace.probes.glob import gmatch

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MODULE = "vmlinux"
# probe name -> the block tracepoint it fires on
TRACEPOINTS = {
    "start": "block_rq_issue",
    "done": "block_rq_complete",
    "wait-start": "block_io_start",
    "wait-done": "block_io_done",
}
INFO_STRSIZE = 64  # bytes of each string member of devinfo_t / fileinfo_t

_SOURCE = (
    """
typedef struct bufinfo {
    int b_flags;
    size_t b_bcount;
    caddr_t b_addr;
    uint64_t b_lblkno;
    uint64_t b_blkno;
    size_t b_resid;
    size_t b_bufsize;
    caddr_t b_iodone;
    int b_error;
    dev_t b_edev;
} bufinfo_t;

typedef struct devinfo {
    int dev_major;
    int dev_minor;
    int dev_instance;
    string dev_name;
    string dev_statname;
    string dev_pathname;
} devinfo_t;

"""
    + FILEINFO
)
TYPE_NAMES = ("bufinfo_t", "devinfo_t", "fileinfo_t")


@cache
def library_types() -> dict[str, Any]:
    """bufinfo_t, devinfo_t, fileinfo_t (and their struct tags) as CTypes."""
    from pydtrace.lang.checker import Checker
    from pydtrace.lang.parser import parse

    checker = Checker(lambda text, line: [], strsize=INFO_STRSIZE)
    checker.check(parse(_SOURCE, from_file=True))
    found: dict[str, Any] = {n: checker.typedefs[n] for n in TYPE_NAMES}
    for tag in ("struct bufinfo", "struct devinfo", "struct fileinfo"):
        found[tag] = checker.tags[tag]
    return found


@cache
def argtypes() -> tuple[Any, ...]:
    """(bufinfo_t *, devinfo_t *, fileinfo_t *): the same objects for every
    probe, so a clause on several io probes has typed args[]."""
    from pydtrace.lang import types as T

    lib = library_types()
    return tuple(T.pointer(lib[n]) for n in TYPE_NAMES)


@dataclass(frozen=True)
class Device:
    dev: int  # the kernel's dev_t: major << 20 | minor
    name: str  # the driver (/proc/devices), e.g. "loop"
    statname: str  # the disk or partition, e.g. "loop0", "vda1"


def kdev(major: int, minor: int) -> int:
    return major << 20 | minor


def block_devices(sysfs: str = "/sys/class/block", procdevs: str = "/proc/devices") -> list[Device]:
    """The block devices present now, with their driver names."""
    drivers: dict[int, str] = {}
    try:
        with open(procdevs) as f:
            block = False
            for line in f:
                if line.startswith("Block devices"):
                    block = True
                    continue
                parts = line.split()
                if block and len(parts) == 2 and parts[0].isdigit():
                    drivers[int(parts[0])] = parts[1]
    except OSError:
        pass
    out = []
    try:
        names = sorted(os.listdir(sysfs))
    except OSError:
        names = []
    for name in names:
        try:
            with open(os.path.join(sysfs, name, "dev")) as f:
                major, minor = (int(x) for x in f.read().split(":"))
        except (OSError, ValueError):
            continue
        out.append(Device(kdev(major, minor), drivers.get(major, "<unknown>"), name))
    return out


class IoProvider(Provider):
    name = "io"
    attributes = PROVIDER_ATTRIBUTES["io"]

    def expand(
        self, module: str, function: str, name: str, types: bool = True
    ) -> Iterable[ProbeTuple]:
        if not gmatch(module, MODULE) or not gmatch(function, ""):
            return
        from pydtrace.probes import tracefs

        for probe, event in TRACEPOINTS.items():
            if not gmatch(name, probe) or not tracefs.has_event("block", event):
                continue
            yield (MODULE, "", probe, argtypes(), ("block", event))
