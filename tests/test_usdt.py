"""USDT probes (sys/sdt.h notes) on uprobes: arguments, semaphores, listing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import bpf_maps_ok, need, pydtrace

ARGS = r"""
#include <sys/sdt.h>
int __attribute__((noinline)) work(int i, long *p) {
    char c = -5;
    DTRACE_PROBE4(myprov, tick, i, *p, c, 123);
    return i;
}
int main(int argc, char **argv) {
    long v = -42;
    for (int i = 0; i < argc + 2; i++) work(i, &v);
    return 0;
}
"""
SEMA = r"""
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>
#include <stdio.h>
__extension__ unsigned short myprov_ping_semaphore __attribute__((unused))
    __attribute__((section(".probes")));
int main(void) {
    for (int i = 0; i < 3; i++) {
        if (myprov_ping_semaphore) fprintf(stderr, "enabled %d\n", i);
        DTRACE_PROBE1(myprov, ping, i * 10);
    }
    return 0;
}
"""


@pytest.fixture(autouse=True)
def _kernel() -> None:
    need(bpf_maps_ok(), "no BPF maps (needs root)")
    need(os.path.exists("/sys/bus/event_source/devices/uprobe/type"), "no uprobe PMU")
    dirs = ("/usr/include", "/usr/include/x86_64-linux-gnu")
    need(any(Path(d, "sys/sdt.h").exists() for d in dirs), "no sys/sdt.h (systemtap-sdt-dev)")


def build(tmp: Path, name: str, src: str, opt: str) -> str:
    need(shutil.which("cc") is not None, "no C compiler")
    c = tmp / f"{name}.c"
    c.write_text(src)
    out = tmp / name
    subprocess.run(["cc", opt, "-o", str(out), str(c)], check=True)
    return str(out)


@pytest.mark.parametrize("opt", ["-O0", "-O2"])
def test_arguments_registers_memory_constants(tmp_path: Path, opt: str) -> None:
    exe = build(tmp_path, "args", ARGS, opt)
    r = pydtrace(
        "-q",
        "-n",
        'myprov$target:::tick { printf("%s:%s:%s %d %d %d %d\\n", probemod, probefunc,'
        " probename, arg0, arg1, arg2, arg3); }",
        "-c",
        f"{exe} x",
    )
    assert r.status == 0, r.err
    assert r.out == "".join(f"args:work:tick {i} -42 -5 123\n" for i in range(4)) + "\n"


def test_semaphore_is_set_while_attached(tmp_path: Path) -> None:
    exe = build(tmp_path, "sema", SEMA, "-O0")
    untraced = subprocess.run([exe], capture_output=True, text=True)
    assert untraced.stderr == ""
    r = pydtrace("-q", "-n", 'myprov$target:::ping { printf("ping %d\\n", arg0); }', "-c", exe)
    assert r.status == 0, r.err
    assert r.out == "ping 0\nping 10\nping 20\n\n"
    assert r.err == "enabled 0\nenabled 1\nenabled 2\n"


def test_listing(tmp_path: Path) -> None:
    exe = build(tmp_path, "args", ARGS, "-O0")
    r = pydtrace("-l", "-n", "myprov$target:::", "-c", exe)
    assert r.status == 0, r.err
    rows = [ln.split() for ln in r.out.splitlines()]
    assert rows[0] == ["ID", "PROVIDER", "MODULE", "FUNCTION", "NAME"]
    assert len(rows) == 2 and rows[1][1].startswith("myprov")
    assert rows[1][2:] == ["args", "work", "tick"]


def test_argument_strings_decode() -> None:
    from pydtrace.engines.ebpf.providers.usdt import parse_arg

    assert parse_arg("-4@%edi") == (-4, "reg", (112, 4))
    assert parse_arg("8@%r12") == (8, "reg", (24, 8))
    assert parse_arg("-1@%sil") == (-1, "reg", (104, 1))
    assert parse_arg("-4@$5") == (-4, "imm", 5)
    assert parse_arg("8@-16(%rbp)") == (8, "mem", (-16, 32, None, 1))
    assert parse_arg("4@8(%rax,%rbx,4)") == (4, "mem", (8, 80, 40, 4))


PY_SCRIPT = """\
def f(n):
    return n + 1
for i in range(5):
    f(i)
"""


def test_python_line_probes(tmp_path: Path) -> None:
    """Debian's python3 carries stapsdt notes (provider python); their `__`
    names are D's hyphens, as `dtrace -h` writes them."""
    py = "/usr/bin/python3"
    need(os.path.exists(py), "no /usr/bin/python3")
    notes = subprocess.run(["readelf", "-n", os.path.realpath(py)], capture_output=True, text=True)
    need("function__entry" in notes.stdout, "this python3 has no USDT notes")
    script = tmp_path / "five.py"
    script.write_text(PY_SCRIPT)
    r = pydtrace("-q", "-c", f"{py} {script}", "-n",
                 'python$target:::line /copyinstr(arg0) == "' + str(script) + '"/'
                 ' { @[copyinstr(arg1), arg2] = count(); }'
                 ' END { printa("%s %d %@d\\n", @); }')  # fmt: skip
    assert r.status == 0, r.err
    # <module>'s loop line runs 6 times (5 iterations and the end), f's body 5
    assert sorted(r.out.split("\n")) == sorted(
        ["", "", "<module> 1 1", "<module> 3 6", "<module> 4 5", "f 2 5"]
    ), r.out
    listing = pydtrace("-l", "-n", "python$target:::function-entry", "-c", f"{py} {script}")
    assert listing.status == 0, listing.err
    assert listing.out.splitlines()[1].split()[-1] == "function-entry"
