"""Regenerate the syscall tables (prototypes.py, x86_64.py, aarch64.py).

    python3 -m pydtrace.probes.syscalls.generate [--tracefs DIR] [--check]

Sources, all public facts of the Linux ABI:

* numbers and ABI names: the uapi headers of the build machine,
  <asm/unistd_64.h> for x86_64 and <asm-generic/unistd.h> run through cpp
  with arm64's feature macros for aarch64;
* calls newer than those headers (the running kernel knows them, the headers
  do not): NEWER below, numbered as in the kernel's syscall tables (numbers
  from 403 on are the same on every architecture);
* the probe (event) name of each call: the kernel entry point's name, which
  is what tracefs and DTrace on Linux call it (x86_64: X86_EVENT below, from
  arch/x86/entry/syscalls/syscall_64.tbl; aarch64: the sys_* name in the
  generic header itself);
* argument types and names: the running kernel's tracefs formats
  (events/syscalls/sys_enter_*/format), and MANUAL below, written from the
  kernel's SYSCALL_DEFINE prototypes, for calls tracefs has no event for.

Run time never reads any of these: the output is plain Python data (run
`ruff format` on it afterwards).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
X86_HEADER = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"
TRACEFS = "/sys/kernel/tracing/events/syscalls"

# x86_64 ABI names whose kernel entry point (and so tracefs event) differs.
X86_EVENT = {
    "stat": "newstat",
    "fstat": "newfstat",
    "lstat": "newlstat",
    "uname": "newuname",
    "sendfile": "sendfile64",
    "umount2": "umount",
}

# arm64's uapi <asm/unistd.h> defines these before including the generic one.
ARM64_DEFINES = (
    "__BITS_PER_LONG=64",
    "__ARCH_WANT_RENAMEAT",
    "__ARCH_WANT_NEW_STAT",
    "__ARCH_WANT_SET_GET_RLIMIT",
    "__ARCH_WANT_TIME32_SYSCALLS",
    "__ARCH_WANT_SYS_CLONE3",
    "__ARCH_WANT_MEMFD_SECRET",
)

# (number, ABI name) of calls added after the headers' version (6.1), up to
# what the running kernel (6.18) provides.  Same numbers on both arches
# unless listed in NEWER_X86_ONLY.
NEWER = (
    (451, "cachestat"),
    (452, "fchmodat2"),
    (453, "map_shadow_stack"),
    (454, "futex_wake"),
    (455, "futex_wait"),
    (456, "futex_requeue"),
    (457, "statmount"),
    (458, "listmount"),
    (459, "lsm_get_self_attr"),
    (460, "lsm_set_self_attr"),
    (461, "lsm_list_modules"),
    (462, "mseal"),
    (463, "setxattrat"),
    (464, "getxattrat"),
    (465, "listxattrat"),
    (466, "removexattrat"),
    (467, "open_tree_attr"),
    (468, "file_getattr"),
    (469, "file_setattr"),
)
NEWER_X86_ONLY = ((335, "uretprobe"), (336, "uprobe"))

# Prototypes of calls with no tracefs event on the reference machine.
# Unimplemented numbers (sys_ni_syscall) take no arguments.
MANUAL: dict[str, tuple[tuple[str, str], ...]] = {
    "delete_module": (("const char *", "name_user"), ("unsigned int", "flags")),
    "init_module": (("void *", "umod"), ("unsigned long", "len"), ("const char *", "uargs")),
    "finit_module": (("int", "fd"), ("const char *", "uargs"), ("int", "flags")),
    "kexec_load": (
        ("unsigned long", "entry"),
        ("unsigned long", "nr_segments"),
        ("struct kexec_segment *", "segments"),
        ("unsigned long", "flags"),
    ),
    "kexec_file_load": (
        ("int", "kernel_fd"),
        ("int", "initrd_fd"),
        ("unsigned long", "cmdline_len"),
        ("const char *", "cmdline_ptr"),
        ("unsigned long", "flags"),
    ),
    "map_shadow_stack": (
        ("unsigned long", "addr"),
        ("unsigned long", "size"),
        ("unsigned int", "flags"),
    ),
    # aarch64 uses the 64-bit-offset variant x86_64 does not have
    "fadvise64_64": (
        ("int", "fd"),
        ("loff_t", "offset"),
        ("loff_t", "len"),
        ("int", "advice"),
    ),
}

# Per-arch prototypes that differ from x86_64's (CONFIG_CLONE_BACKWARDS on arm64).
AARCH64_ARGS: dict[str, tuple[tuple[str, str], ...]] = {
    "clone": (
        ("unsigned long", "clone_flags"),
        ("unsigned long", "newsp"),
        ("int *", "parent_tidptr"),
        ("unsigned long", "tls"),
        ("int *", "child_tidptr"),
    ),
}

_FIELD = re.compile(r"^\s*field:(.*);\s*offset:")


def norm_type(text: str) -> str:
    """Canonical spelling: 'struct iocb * *' -> 'struct iocb **'."""
    t = " ".join(text.split())
    while "* *" in t:
        t = t.replace("* *", "**")
    return t


def parse_format(path: Path) -> tuple[tuple[str, str], ...]:
    """(type, name) of each argument in a sys_enter_* format file."""
    out = []
    for line in path.read_text().splitlines():
        m = _FIELD.match(line)
        if not m:
            continue
        decl = m.group(1).strip()
        ctype, _, name = decl.rpartition(" ")
        if name.startswith("common_") or name == "__syscall_nr":
            continue
        out.append((norm_type(ctype), name))
    return tuple(out)


def tracefs_prototypes(root: str) -> dict[str, tuple[tuple[str, str], ...]]:
    protos = {}
    if not os.path.isdir(root):
        return protos
    for d in sorted(Path(root).glob("sys_enter_*")):
        protos[d.name[len("sys_enter_") :]] = parse_format(d / "format")
    return protos


def x86_64_rows() -> list[tuple[int, str, str]]:
    rows = []
    for line in Path(X86_HEADER).read_text().splitlines():
        m = re.match(r"#define __NR_(\w+)\s+(\d+)", line)
        if m:
            abi = m.group(1)
            rows.append((int(m.group(2)), abi, X86_EVENT.get(abi, abi)))
    rows += [(nr, abi, abi) for nr, abi in NEWER + NEWER_X86_ONLY]
    return _unique(rows)


def _cpp(text: str, defines: tuple[str, ...]) -> str:
    cmd = ["cpp", "-P", "-dD"] + [f"-D{d}" for d in defines]
    return subprocess.run(cmd, input=text, capture_output=True, text=True, check=True).stdout


def aarch64_rows() -> list[tuple[int, str, str]]:
    # First pass: every __NR_ name the generic header defines for arm64.
    macros = _cpp("#include <asm-generic/unistd.h>\n", ARM64_DEFINES)
    # arch_specific_syscall only marks where arch-private numbers would start
    placeholders = {"syscalls", "arch_specific_syscall"}
    names = sorted(set(re.findall(r"#define __NR_(\w+) ", macros)) - placeholders)
    # Second pass: their numbers, and the entry point each number calls.
    probe = "#define __SYSCALL(nr, call) @ENTRY nr call\n#include <asm-generic/unistd.h>\n"
    probe += "".join(f"@NR {n} __NR_{n}\n" for n in names)
    out = _cpp(probe, ARM64_DEFINES)
    entry = {int(n): c for n, c in re.findall(r"@ENTRY (\d+) (\w+)", out)}
    rows = []
    for abi, nr in re.findall(r"@NR (\w+) (\d+)\b", out):
        call = entry.get(int(nr), "sys_ni_syscall")
        event = abi if call == "sys_ni_syscall" else call.removeprefix("sys_")
        rows.append((int(nr), abi, event))
    rows += [(nr, abi, abi) for nr, abi in NEWER]
    return _unique(rows)


def _unique(rows: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
    """One row per number (the first ABI name wins), in number order."""
    seen: dict[int, tuple[int, str, str]] = {}
    for r in rows:
        seen.setdefault(r[0], r)
    return [seen[n] for n in sorted(seen)]


def write_table(path: Path, arch: str, audit: str, rows, extra_args=None) -> None:
    lines = [
        f'"""System call numbers of {arch} (generated by generate.py; do not edit)."""',
        "",
        f"AUDIT_ARCH = {audit}",
        "",
        "# (number, ABI name, probe name)",
        "SYSCALLS = (",
    ]
    lines += [f"    ({nr}, {abi!r}, {ev!r})," for nr, abi, ev in rows]
    lines.append(")")
    if extra_args:
        lines += ["", "# prototypes that differ from the shared ones on this arch", "ARGS = {"]
        for k, v in sorted(extra_args.items()):
            lines.append(f"    {k!r}: {v!r},")
        lines.append("}")
    path.write_text("\n".join(lines) + "\n")


def write_prototypes(path: Path, protos: dict) -> None:
    lines = [
        '"""Argument (C type, name) pairs of every syscall, by probe name.',
        "",
        "Generated by generate.py from tracefs formats and kernel prototypes; do not edit.",
        '"""',
        "",
        "PROTOTYPES: dict[str, tuple[tuple[str, str], ...]] = {",
    ]
    for k in sorted(protos):
        lines.append(f"    {k!r}: {protos[k]!r},")
    lines.append("}")
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tracefs", default=TRACEFS)
    ap.add_argument("--out", default=str(HERE))
    a = ap.parse_args(argv)
    out = Path(a.out)
    x86 = x86_64_rows()
    arm = aarch64_rows()
    protos = dict(MANUAL)
    protos.update(tracefs_prototypes(a.tracefs))
    missing = sorted({ev for _, _, ev in x86 + arm} - protos.keys())
    for ev in missing:  # unimplemented numbers, or no event on this kernel
        protos[ev] = ()
    write_prototypes(out / "prototypes.py", protos)
    write_table(out / "x86_64.py", "x86_64", "0xC000003E", x86)
    write_table(out / "aarch64.py", "aarch64", "0xC00000B7", arm, AARCH64_ARGS)
    print(f"x86_64: {len(x86)} calls, aarch64: {len(arm)} calls", file=sys.stderr)
    print(f"no prototype (taken as no arguments): {' '.join(missing)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
