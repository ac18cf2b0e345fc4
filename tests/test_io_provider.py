"""The io provider on the eBPF engine: real block I/O on a loop device
(O_DIRECT reads and writes, so each call is one request), checked for exact
counts, sizes, sectors, directions and device names."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

from conftest import need, pydtrace
from pydtrace.probes import tracefs
from pydtrace.probes.providers import io

DIO = r"""
    #define _GNU_SOURCE
    #include <fcntl.h>
    #include <stdlib.h>
    #include <string.h>
    #include <unistd.h>
    int main(int argc, char **argv) {
        int fd = open(argv[1], O_RDWR | O_DIRECT);
        void *buf;
        if (fd < 0 || posix_memalign(&buf, 4096, 8192)) return 2;
        memset(buf, 'x', 8192);
        if (pwrite(fd, buf, 8192, 1 << 20) != 8192) return 3;             /* sector 2048 */
        if (pwrite(fd, buf, 4096, (1 << 20) + 65536) != 4096) return 4;   /* sector 2176 */
        for (int i = 0; i < 3; i++)                                       /* 2048, 2056, 2064 */
            if (pread(fd, buf, 4096, (1 << 20) + 4096 * i) != 4096) return 5;
        return close(fd);
    }
"""


def dio(tmp_path: Path) -> str:
    need(shutil.which("cc") is not None, "no C compiler")
    src = tmp_path / "dio.c"
    src.write_text(textwrap.dedent(DIO))
    subprocess.run(["cc", "-O1", "-o", str(tmp_path / "dio"), str(src)], check=True)
    return str(tmp_path / "dio")


def test_start_done_sizes_directions_devices(tmp_path: Path, loop: str) -> None:
    name = Path(loop).name
    minor = int(Path(f"/sys/class/block/{name}/dev").read_text().split(":")[1])
    r = pydtrace(
        "-q", "-c", f"{dio(tmp_path)} {loop}",
        "-n", f'io:::start, io:::done /args[1]->dev_statname == "{name}"/ '
              '{ printf("%s %s %d %d %s %s %s %d %d %s\\n", probename, '
              'args[0]->b_flags & B_WRITE ? "W" : "R", args[0]->b_bcount, args[0]->b_blkno, '
              "args[1]->dev_name, args[1]->dev_statname, args[1]->dev_pathname, "
              "args[1]->dev_major, args[1]->dev_minor, args[2]->fi_name); }",
    )  # fmt: skip
    assert r.status == 0, r.err
    tail = f"loop {name} /dev/{name} 7 {minor} <unknown>"
    want = [
        f"{probe} {d} {n} {sector} {tail}"
        for d, n, sector in [("W", 8192, 2048), ("W", 4096, 2176),
                             ("R", 4096, 2048), ("R", 4096, 2056), ("R", 4096, 2064)]
        for probe in ("start", "done")
    ]  # fmt: skip
    assert sorted(x for x in r.out.splitlines() if x) == sorted(want)


def test_flags_and_counts(tmp_path: Path, loop: str) -> None:
    name = Path(loop).name
    r = pydtrace(
        "-q", "-c", f"{dio(tmp_path)} {loop}",
        "-n", f'io::: /args[1]->dev_statname == "{name}"/ '
              "{ @n[probename] = count(); @b[probename] = sum(args[0]->b_bcount); "
              "@r[probename] = sum(args[0]->b_flags & B_READ ? 1 : 0); "
              "@w[probename] = sum(args[0]->b_flags & B_WRITE ? 1 : 0); }",
        # the target's own I/O on the loop device (a page-in of its binary, if
        # one comes, is the target's too, on another device)
        "-n", f'io:::start /pid == $target && args[1]->dev_statname == "{name}"/ '
              "{ @mine = count(); }",
        "-n", 'END { printa("%s %@d\\n", @n); printa("%s %@d\\n", @b); printa("%s %@d\\n", @r); '
              'printa("%s %@d\\n", @w); printa("%@d\\n", @mine); }',
    )  # fmt: skip
    assert r.status == 0, r.err
    lines = [x for x in r.out.splitlines() if x]
    parse = [dict(x.rsplit(" ", 1) for x in lines[k : k + 4]) for k in range(0, 16, 4)]
    every = ("done", "start", "wait-done", "wait-start")
    assert parse[0] == dict.fromkeys(every, "5")
    # the accounting end (wait-done) sees no bytes left
    assert parse[1] == {"done": "24576", "start": "24576", "wait-done": "0", "wait-start": "24576"}
    assert parse[2] == dict.fromkeys(every, "3")
    assert parse[3] == dict.fromkeys(every, "2")
    assert lines[16:] == ["5"]


def test_list_verbose() -> None:
    need(tracefs.has_event("block", "block_rq_issue"), "no block tracepoints")
    r = pydtrace("-lv", "-n", "io:::start")
    assert r.status == 0, r.err
    lines = r.out.splitlines()
    assert lines[1].split()[1:] == ["io", "vmlinux", "start"]
    assert r.out.split("\tArgument Types\n")[1] == (
        "\t\targs[0]: bufinfo_t *\n\t\targs[1]: devinfo_t *\n\t\targs[2]: fileinfo_t *\n\n"
    )
    r = pydtrace("-l", "-P", "io")
    assert [x.split()[-1] for x in r.out.splitlines()[1:]] == list(io.TRACEPOINTS)


def test_block_devices_parse(tmp_path: Path) -> None:
    (tmp_path / "loop3").mkdir()
    (tmp_path / "loop3" / "dev").write_text("7:3\n")
    (tmp_path / "vda1").mkdir()
    (tmp_path / "vda1" / "dev").write_text("254:1\n")
    devs = tmp_path / "devices"
    devs.write_text("Character devices:\n  7 vcs\n\nBlock devices:\n  7 loop\n254 virtblk\n")
    got = io.block_devices(str(tmp_path), str(devs))
    assert got == [
        io.Device(7 << 20 | 3, "loop", "loop3"),
        io.Device(254 << 20 | 1, "virtblk", "vda1"),
    ]
