"""symbols/elf.py on programs compiled at test time: PIE and not, a shared library, stripped."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pydtrace.symbols.elf import ElfError, ElfFile, Symbol

SRC = """
int twice(int x) { return 2 * x; }
static int hidden(int x) { return x + 1; }
int main(int argc, char **argv) { return twice(argc) + hidden(argc) - 5; }
"""
LIB = "int libfn(int a, int b) { return a * b; }\n"


def build(tmp: Path, name: str, src: str, *flags: str) -> str:
    if shutil.which("cc") is None:
        pytest.skip("no C compiler")
    c = tmp / f"{name}.c"
    c.write_text(src)
    out = tmp / name
    subprocess.run(["cc", "-O0", "-g0", "-o", str(out), str(c), *flags], check=True)
    return str(out)


def nm(path: str) -> dict[str, int]:
    r = subprocess.run(["nm", "--defined-only", path], capture_output=True, text=True)
    return {
        ln.split()[2]: int(ln.split()[0], 16)
        for ln in r.stdout.splitlines()
        if " T " in ln or " t " in ln
    }


@pytest.mark.parametrize("pie", [True, False])
def test_program_symbols_and_offsets(tmp_path: Path, pie: bool) -> None:
    exe = build(tmp_path, "prog", SRC, "-pie" if pie else "-no-pie", "-fPIE" if pie else "-fno-pie")
    e = ElfFile(exe)
    assert e.is_pie is pie and e.etype == (3 if pie else 2)
    funcs = {s.name: s for s in e.functions()}
    ref = nm(exe)
    for name in ("twice", "hidden", "main"):
        assert funcs[name].addr == ref[name] and funcs[name].size > 0
    addrs = [s.addr for s in e.functions()]
    assert addrs == sorted(addrs)
    off = e.addr_to_offset(funcs["twice"].addr)
    assert e.offset_to_addr(off) == funcs["twice"].addr
    if pie:
        assert off == funcs["twice"].addr  # first PT_LOAD maps offset 0 at address 0
    # the function's bytes at that offset are the ones objdump shows there
    with open(exe, "rb") as f:
        f.seek(off)
        assert f.read(1) in (b"\xf3", b"\x55")  # endbr64 or push %rbp
    assert e.function_at(funcs["twice"].addr + 3) == funcs["twice"]
    assert e.build_id and len(e.build_id) == 40
    r = subprocess.run(["readelf", "-n", exe], capture_output=True, text=True)
    assert e.build_id in r.stdout
    assert "libc.so.6" in e.needed


def test_shared_library(tmp_path: Path) -> None:
    lib = build(tmp_path, "libx.so", LIB, "-shared", "-fPIC")
    e = ElfFile(lib)
    assert e.etype == 3 and not e.is_pie
    fn = [s for s in e.functions() if s.name == "libfn"]
    assert fn == [Symbol("libfn", nm(lib)["libfn"], fn[0].size)]


def test_stripped_binary_keeps_dynsym_only(tmp_path: Path) -> None:
    exe = build(tmp_path, "prog", SRC, "-rdynamic")
    subprocess.run(["strip", exe], check=True)
    e = ElfFile(exe)
    names = {s.name for s in e.functions()}
    assert "twice" in names and "hidden" not in names  # .dynsym survives strip
    assert e.section(".symtab") is None
    addr, data = e.section(".text")
    assert addr and data


def test_libc_is_fast_and_unique() -> None:
    e = ElfFile("/lib/x86_64-linux-gnu/libc.so.6")
    fs = e.functions()
    assert len(fs) > 1000 and len({(s.name, s.addr) for s in fs}) == len(fs)
    assert any(s.name == "malloc" for s in fs)


def test_usdt_notes(tmp_path: Path) -> None:
    if not any(
        Path(d, "sys/sdt.h").exists() for d in ("/usr/include", "/usr/include/x86_64-linux-gnu")
    ):
        pytest.skip("no sys/sdt.h (systemtap-sdt-dev)")
    src = (
        "#include <sys/sdt.h>\nint main(int c, char **v) {\n"
        "  DTRACE_PROBE2(myprov, myprobe, c, 5);\n  return 0;\n}\n"
    )
    e = ElfFile(build(tmp_path, "usdt", src))
    (p,) = e.stapsdt()
    assert (p.provider, p.name, p.semaphore) == ("myprov", "myprobe", 0)
    assert e.function_at(p.pc).name == "main"
    assert p.args.split()[1] == "-4@$5"
    assert any(o == "stapsdt" for o, _t, _d in e.notes())


def test_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "notelf"
    bad.write_text("hello, this is not an ELF file at all ...................................")
    with pytest.raises(ElfError, match=r"notelf is not an ELF file\."):
        ElfFile(str(bad))
    with pytest.raises(ElfError, match=r"cannot open .*missing: No such file"):
        ElfFile(str(tmp_path / "missing"))
