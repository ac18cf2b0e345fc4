"""iosnoop and biolatency against ground truth: O_DIRECT reads and writes
made by dd on a loop device over a file in /tmp (each dd block is one
request): iosnoop prints one line per request with its disk, direction,
sector and size; biolatency's histograms count every request once."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from conftest import bpf_maps_ok, need
from pydtrace.tools import histogram as H
from toolrun import tool


@pytest.fixture
def loop(loop: str) -> str:
    """conftest's loop device; these tests write and read it with dd."""
    need(shutil.which("dd") is not None, "no dd")
    return loop


def dd(dev: str, writes: int, reads: int) -> list[str]:
    """A command making `writes` 4 KiB O_DIRECT writes from sector 40 on, then
    `reads` 8 KiB O_DIRECT reads from sector 16 on: one request each."""
    return ["sh", "-c",
            f"dd if=/dev/zero of={dev} bs=4k count={writes} seek=5 oflag=direct 2>/dev/null && "
            f"dd if={dev} of=/dev/null bs=8k count={reads} skip=1 iflag=direct 2>/dev/null"]  # fmt: skip


def requests(writes: int, reads: int) -> list[tuple[str, int, int]]:
    """(direction, sector, bytes) of dd()'s requests, in order."""
    return [("W", 40 + 8 * i, 4096) for i in range(writes)] + [
        ("R", 16 + 16 * i, 8192) for i in range(reads)
    ]


def test_iosnoop_one_line_per_request(loop: str) -> None:
    disk = Path(loop).name
    r = tool("iosnoop", "-j", "-d", disk, "--", *dd(loop, 3, 2))
    assert (r.status, r.err) == (0, ""), r.err
    got = r.json()
    assert [(e["rw"], e["sector"], e["bytes"]) for e in got] == requests(3, 2)
    assert {(e["disk"], e["comm"]) for e in got} == {(disk, "dd")}
    # the writes are one dd's, the reads the other's
    assert len({e["pid"] for e in got[:3]}) == 1 and len({e["pid"] for e in got[3:]}) == 1
    assert got[0]["pid"] != got[3]["pid"]
    assert all(e["lat_ns"] > 0 for e in got)


def test_iosnoop_columns(loop: str) -> None:
    """BCC's biosnoop columns; -Q adds the time queued."""
    disk = Path(loop).name
    r = tool("iosnoop", "-Q", "-d", disk, "--", *dd(loop, 2, 1))
    assert (r.status, r.err) == (0, ""), r.err
    lines = r.out.splitlines()
    assert (
        lines[0]
        == "TIME(s)     COMM           PID     DISK      T SECTOR     BYTES   QUE(ms) LAT(ms)"
    )
    row = re.compile(rf"^(\d+\.\d{{6}}) +dd +(\d+) +{disk} +([RW]) (\d+) +(\d+) +(\d+\.\d\d) +(\d+\.\d\d)$")  # fmt: skip
    rows = [row.match(x) for x in lines[1:]]
    assert all(rows), lines
    assert [(m[3], int(m[4]), int(m[5])) for m in rows] == requests(2, 1)  # type: ignore[index]
    assert float(rows[0][1]) == 0.0  # type: ignore[index]


def test_biolatency_counts_every_request(loop: str) -> None:
    disk = Path(loop).name
    r = tool("biolatency", "-j", "-d", disk, "--", *dd(loop, 7, 5))
    assert (r.status, r.err) == (0, ""), r.err
    (hist,) = r.json()
    assert (hist["unit"], hist["total"]) == ("usecs", 12)
    assert sum(b["count"] for b in hist["buckets"]) == 12
    # per disk, in milliseconds, as text: one section, the same total
    r = tool("biolatency", "-D", "-m", "-d", disk, "--", *dd(loop, 4, 3))
    assert (r.status, r.err) == (0, ""), r.err
    lines = r.out.splitlines()
    assert lines[:4] == ["Tracing block device I/O... Hit Ctrl-C to end.", "", "", f"disk = {disk}"]
    assert lines[4] == "     msecs               : count     distribution"
    counts = [int(re.match(r"^ +\d+ -> \d+ +: (\d+) +\|\** *\|$", x)[1]) for x in lines[5:]]  # type: ignore[index]
    assert sum(counts) == 7


def test_biolatency_intervals() -> None:
    """`biolatency -T 0.2 3`: three prints, each a blank line and the time (an
    idle machine's histogram is empty, BCC prints nothing for it)."""
    need(bpf_maps_ok(), "the block tools need the eBPF engine")
    r = tool("biolatency", "-T", "-d", "no-such-disk", "0.2", "3")
    assert (r.status, r.err) == (0, "")
    lines = r.out.splitlines()
    assert lines[0] == "Tracing block device I/O... Hit Ctrl-C to end."
    assert [x for x in lines[1:] if x] == [x for x in lines[1:] if re.fullmatch(r"\d\d:\d\d:\d\d", x)]  # fmt: skip
    assert len(lines) == 7


def test_log2_histogram_is_bccs() -> None:
    """BCC's print_log2_hist: slots from 0 -> 1 up to the last used, the stars
    rounded up to 40 for the largest; D's 0 and 1 buckets are BCC's first slot."""
    bins = [0] * 127
    bins[63], bins[64], bins[65], bins[66], bins[68] = 1, 2, 22, 25, 1  # 0, 1, 2-3, 4-7, 16-31
    slots = H.slots(bins)
    assert slots[:6] == [0, 3, 22, 25, 0, 1]
    assert H.log2_hist(slots, "usecs") == (
        "     usecs               : count     distribution\n"
        "         0 -> 1          : 3        |*****                                   |\n"
        "         2 -> 3          : 22       |************************************    |\n"
        "         4 -> 7          : 25       |****************************************|\n"
        "         8 -> 15         : 0        |                                        |\n"
        "        16 -> 31         : 1        |**                                      |\n"
    )
    assert H.log2_hist([0] * 64, "usecs") == ""
    wide = [0] * 64
    wide[40] = 4
    text = H.log2_hist(wide, "usecs").splitlines()
    assert text[0] == "               usecs                         : count     distribution"
    assert (
        text[-1] == "        549755813888 -> 1099511627775        : 4        |********************|"
    )
