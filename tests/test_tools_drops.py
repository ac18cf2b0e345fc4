"""Nothing lost silently: under a flood of events larger than the eBPF
engine's buffer, a snoop tool reports every event it could not keep as
dtrace does (`opensnoop: N drops on CPU C`), and the rows it printed plus
the drops it reported are exactly the events that happened."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from conftest import bpf_maps_ok, need
from toolrun import script, tool

FLOOD = """\
import os, sys
for i in range(int(sys.argv[1])):
    try:
        os.open(f"/nonexistent-flood/{i}", os.O_RDONLY)
    except OSError:
        pass
"""


def test_a_flood_is_counted_row_or_drop(tmp_path: Path) -> None:
    need(bpf_maps_ok(), "drops are the eBPF engine's (the ptrace engine stops the process)")
    n = 20000
    prog = script(tmp_path, "flood.py", FLOOD)
    # an 8 KiB buffer holds a few dozen rows: the flood cannot fit
    r = tool("opensnoop", "-x", "--bufsize", "8k", "--", sys.executable, prog, str(n))
    assert r.status == 0
    rows = [x for x in r.out.splitlines() if "/nonexistent-flood/" in x]
    drops = 0
    for line in r.err.splitlines():
        m = re.fullmatch(r"opensnoop: (\d+) drops? on CPU \d+", line)
        assert m is not None, line  # stderr holds drop lines and nothing else
        drops += int(m.group(1))
    assert drops > 0 and rows
    assert len(rows) + drops == n
    # the rows that came through are whole and in order
    seen = [int(x.rsplit("/", 1)[1]) for x in rows]
    assert seen == sorted(seen) and len(set(seen)) == len(seen)


def test_bufsize_is_checked() -> None:
    r = tool("opensnoop", "--bufsize", "lots")
    assert (r.status, r.out, r.err) == (
        2, "", "opensnoop: invalid value for --bufsize: 'lots': Invalid value for specified option\n")  # fmt: skip
    r = tool("opensnoop", "--bufsize", "64k", "--print-script")
    assert r.status == 0 and r.err == ""
