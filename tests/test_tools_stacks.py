"""profile and offcputime on C programs whose stacks and times are known:
a program spinning in spin() -> inner() for a known CPU time, sampled at
-F Hz; a program sleeping N times 10 ms in nanosleep(). Their folded
output, JSON and flame graphs agree with each other and with the program."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import bpf_maps_ok, need, unreported
from pydtrace.tools import flamegraph as F
from toolrun import tool

BURN = r"""
#include <time.h>
static volatile unsigned long sink;
__attribute__((noinline)) void inner(void) { for (int i = 0; i < 100000; i++) sink += i; }
static double cpu(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}
__attribute__((noinline)) void spin(double secs) {   /* secs of CPU time in here */
    double end = cpu() + secs;
    do inner(); while (cpu() < end);
}
int main(void) { spin(CPU_SECONDS); return 0; }
"""
NAP = r"""
#include <time.h>
__attribute__((noinline)) void nap(void) { struct timespec ts = {0, 10 * 1000 * 1000}; nanosleep(&ts, 0); }
int main(void) { for (int i = 0; i < NAPS; i++) nap(); return 0; }
"""
CPU_SECONDS = 0.6
NAPS = 20


def build(tmp: Path, name: str, text: str, **defines: object) -> str:
    need(bpf_maps_ok(), "profile and offcputime need the eBPF engine")
    need(shutil.which("cc") is not None, "no C compiler")
    (tmp / f"{name}.c").write_text(text)
    flags = [f"-D{k}={v}" for k, v in defines.items()]
    subprocess.run(["cc", "-O0", "-fno-omit-frame-pointer", "-mno-omit-leaf-frame-pointer",
                    *flags, "-o", str(tmp / name), str(tmp / f"{name}.c")], check=True)  # fmt: skip
    return str(tmp / name)


def folded(text: str) -> dict[str, int]:
    rows = F.parse_folded(text)
    assert F.folded_text(rows) == text  # every line `a;b;c N`, in order, once
    return rows


def test_profile_samples_the_hot_stack_at_the_rate_asked(tmp_path: Path) -> None:
    burn = build(tmp_path, "burn", BURN, CPU_SECONDS=CPU_SECONDS)
    hz = 199
    r = tool("profile", "-F", str(hz), "-f", "--", burn)
    assert (r.status, r.err) == (0, ""), r.err
    rows = folded(r.out)
    assert all(line.startswith("burn;") for line in rows), rows
    # every CPU is sampled hz times a second: spin() ran CPU_SECONDS on CPU
    spin = sum(n for line, n in rows.items() if ";main;spin" in line)
    assert 0.75 * hz * CPU_SECONDS <= spin <= 1.25 * hz * CPU_SECONDS, rows
    hot = rows.get("burn;__libc_start_call_main;main;spin;inner", 0)
    assert hot >= 0.75 * spin, rows


def test_profile_svg_is_the_folded_stacks(tmp_path: Path) -> None:
    """-f and --svg in one run: the flame graph's frames are the folded rows'."""
    burn = build(tmp_path, "burn", BURN, CPU_SECONDS=0.3)
    svg = tmp_path / "flame.svg"
    r = tool("profile", "-F", "99", "-f", "--svg", str(svg), "--", burn)
    assert (r.status, r.err) == (0, ""), r.err
    rows = folded(r.out)
    text = svg.read_text()
    ET.fromstring(text)
    assert text == F.svg(rows, "CPU samples (profile)", "samples")
    assert os.stat(svg).st_mode & 0o777 == 0o644


def test_profile_svg_replaces_a_link_it_does_not_follow(tmp_path: Path) -> None:
    """As root, --svg never writes through another user's symbolic link (outfiles)."""
    burn = build(tmp_path, "burn", BURN, CPU_SECONDS=0.05)
    target = tmp_path / "precious"
    target.write_text("keep\n")
    link = tmp_path / "flame.svg"
    link.symlink_to(target)
    os.lchown(link, 65534, 65534)
    r = tool("profile", "--svg", str(link), "--", burn)
    assert (r.status, r.err) == (0, ""), r.err
    assert target.read_text() == "keep\n"
    assert not link.is_symlink() and link.read_text().startswith("<?xml")


def test_profile_svg_path_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    need(bpf_maps_ok(), "profile needs the eBPF engine")
    r = tool("profile", "--svg", str(tmp_path / "no" / "such.svg"), "1")
    assert (r.status, r.out) == (1, "")
    assert (
        r.err == f"profile: failed to write to {tmp_path}/no/such.svg: No such file or directory\n"
    )


def test_offcputime_times_each_sleep_under_its_stacks(tmp_path: Path) -> None:
    nap = build(tmp_path, "nap", NAP, NAPS=NAPS)
    # -m 9000: times off CPU of 9 ms or more (each nap sleeps 10 ms)
    r = tool("offcputime", "-j", "-m", "9000", "--", nap)
    err, _, unseen = unreported(r.err)
    assert (r.status, err) == (0, ""), r.err
    sleeps = [e for e in r.json() if "do_nanosleep" in e["kstack"]]
    assert len(sleeps) == 1, r.out  # one user + kernel stack
    (e,) = sleeps
    # every nap, but one whose switch-in the kernel hid (and the tool said so)
    assert e["comm"] == "nap" and NAPS - unseen <= e["count"] <= NAPS, r.err
    assert e["kstack"][:2] == ["__schedule", "schedule"]
    assert re.fullmatch(r"\w*clock_nanosleep\w*", e["ustack"][0]) and "main" in e["ustack"]
    assert e["count"] * 10_000 <= e["us"] < e["count"] * 10_000 + 30 * 1_000_000


def test_offcputime_stack_choices(tmp_path: Path) -> None:
    nap = build(tmp_path, "nap", NAP, NAPS=3)
    r = tool("offcputime", "-j", "-K", "-m", "9000", "--", nap)
    err, _, unseen = unreported(r.err)
    assert (r.status, err) == (0, ""), r.err
    got = r.json()
    assert got and all(e["ustack"] == [] for e in got), got
    naps = sum(e["count"] for e in got if "do_nanosleep" in e["kstack"])
    assert 3 - unseen <= naps <= 3, (got, r.err)
    # user stacks only: a nap, or a wait for the CPU on the way back from one
    # (exit_to_user_mode_loop, under load), leaves the CPU in clock_nanosleep
    r = tool("offcputime", "-j", "-U", "-m", "9000", "--", nap)
    err, _, unseen = unreported(r.err)
    assert (r.status, err) == (0, ""), r.err
    got = r.json()
    assert got and all(e["kstack"] == [] for e in got), got
    naps = [e for e in got if re.fullmatch(r"\w*clock_nanosleep\w*", e["ustack"][0])]
    assert sum(e["count"] for e in naps) >= 3 - unseen, (got, r.err)
    r = tool("offcputime", "-f", "-m", "9000", "--", nap)
    rows = folded(r.out)
    assert [n for line, n in rows.items() if "do_nanosleep" in line] and all(
        line.startswith("nap;") for line in rows
    )
    # default: BCC's lines, kernel frames first, then the user's, then `-  comm (pid)` and us
    r = tool("offcputime", "-m", "9000", "--", nap)
    lines = r.out.splitlines()
    assert (
        lines[0]
        == "Tracing off-CPU time (us) of the command by user + kernel stack... Hit Ctrl-C to end."
    )
    assert lines[1:3] == ["    __schedule", "    schedule"]
    assert re.fullmatch(r"    -                nap \(\d+\)", lines[-3]) and re.fullmatch(
        r"        \d+", lines[-2]
    )


@pytest.mark.parametrize(("args", "message"), [
    (["-U", "-K"], "-U and -K cannot be used together"),
    (["-f", "-j"], "-f and -j cannot be used together"),
    (["1", "2"], "unexpected argument '2' (one duration in seconds)"),
])  # fmt: skip
def test_usage_errors(args: list[str], message: str) -> None:
    for name in ("profile", "offcputime"):
        r = tool(name, *args)
        assert (r.status, r.out, r.err) == (2, "", f"{name}: {message}\n")
